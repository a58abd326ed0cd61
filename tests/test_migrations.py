"""The schema comes from Alembic only: one head, and the models match the migrations."""

from __future__ import annotations

from typing import Any

from sso import migrate


def test_there_is_a_single_head(app: Any) -> None:
    assert len(migrate.heads(app)) == 1


def test_models_and_migrations_agree(app: Any) -> None:
    migrate.check(app)


def test_database_is_at_head(app: Any) -> None:
    assert migrate.is_current(app)


def test_downgrade_to_base_and_up_again(app_config: dict[str, Any], tmp_path: Any) -> None:
    from sso import create_app

    config = {**app_config}
    if config["DATABASE_URL"].startswith("sqlite"):
        config["DATABASE_URL"] = f"sqlite:///{tmp_path / 'roundtrip.sqlite3'}"
    else:
        return  # the PostgreSQL round trip would drop the session's shared schema
    fresh = create_app(config)
    migrate.upgrade(fresh)
    migrate.downgrade(fresh, "base")
    assert migrate.current_revision(fresh) is None
    migrate.upgrade(fresh)
    assert migrate.is_current(fresh)
