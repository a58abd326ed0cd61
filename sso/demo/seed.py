"""Seed the demo: an admin, three users and the ERP, CRM and inventory apps with their roles.

Running it again changes nothing that is already there, except that each demo app's
registration (redirect URIs, scopes, ``settings``) is brought back in line with
:data:`DEMO_APPS`. The apps' client secrets are generated once and kept in the instance folder
(git-ignored), so the demo apps keep working across restarts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..accounts import service as accounts
from ..extensions import db
from ..oidc import clients
from ..security import hash_token, new_token, same

DEMO_PASSWORD = "Demo-SSO-2024"
SECRETS_FILE = "demo-client-secrets.json"
SCOPE = "openid profile email phone offline_access roles"

#: The demo apps. ``settings`` goes into the client's settings (its sign-in policy, e.g.
#: ``mfa_required`` or ``activation``): change a demo app's policy here, then rerun the seed.
DEMO_APPS: list[dict[str, Any]] = [
    {
        "name": "ERP", "client_id": "erp", "port": 5001, "accent": "#1f5fbf",
        "roles": {"accountant": "Posts journal entries", "approver": "Approves purchases"},
        "settings": {},
    },
    {
        "name": "CRM", "client_id": "crm", "port": 5002, "accent": "#0f7b6c",
        "roles": {"sales-rep": "Works leads and deals", "sales-manager": "Owns the pipeline"},
        "settings": {},
    },
    {
        "name": "Inventory", "client_id": "inventory", "port": 5003, "accent": "#9a5b13",
        "roles": {"clerk": "Books goods in and out", "auditor": "Counts and reconciles stock"},
        "settings": {},
    },
]

#: The demo users and their roles per app (client_id -> role names); each has a different mix.
DEMO_USERS: list[dict[str, Any]] = [
    {"username": "admin", "name": "Demo Admin", "email": "admin@example.com", "admin": True,
     "phone": None,
     "roles": {"erp": ["approver"], "crm": ["sales-manager"], "inventory": ["auditor"]}},
    {"username": "alice", "name": "Alice", "email": "alice@example.com", "admin": False,
     "phone": "+8613800000001",
     "roles": {"erp": ["accountant", "approver"], "crm": ["sales-rep"]}},
    {"username": "sales", "name": "Sales Demo", "email": "sales@example.com", "admin": False,
     "phone": None,
     "roles": {"crm": ["sales-rep", "sales-manager"], "inventory": ["auditor"]}},
    {"username": "warehouse", "name": "Warehouse Demo", "email": "warehouse@example.com",
     "admin": False, "phone": None,
     "roles": {"inventory": ["clerk"], "erp": ["accountant"]}},
]


def base_url(demo_app: dict[str, Any], host: str = "127.0.0.1") -> str:
    return f"http://{host}:{demo_app['port']}"


def _read_secrets(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_secrets(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh, indent=2, sort_keys=True)
    temporary.replace(path)


def _seed_app(demo_app: dict[str, Any], known_secret: str | None) -> str:
    """Register or update one demo app; return its client secret."""
    url = base_url(demo_app)
    redirect_uris = [f"{url}/callback"]
    logout_uris = [f"{url}/"]
    client = clients.get(demo_app["client_id"])
    if client is None:
        client, secret = clients.create_client(
            demo_app["name"], redirect_uris, post_logout_redirect_uris=logout_uris,
            grant_types=["authorization_code", "refresh_token"], scope=SCOPE,
            first_party=True, client_id=demo_app["client_id"],
            settings=dict(demo_app["settings"]),
        )
        assert secret is not None  # noqa: S101 - a confidential client always has one
    else:
        client.redirect_uris = redirect_uris
        client.post_logout_redirect_uris = logout_uris
        client.settings = {**(client.settings or {}), **demo_app["settings"]}
        if known_secret and client.secret_hash and same(hash_token(known_secret),
                                                        client.secret_hash):
            secret = known_secret
        else:
            # The stored secret was lost (instance folder wiped): issue a new one.
            secret = new_token(clients.SECRET_PREFIX)
            client.secret_hash = hash_token(secret)
    for role, description in demo_app["roles"].items():
        accounts.define_role(demo_app["client_id"], role, description)
    return secret


def _seed_user(spec: dict[str, Any]) -> None:
    user = accounts.find_by_login(spec["username"])
    if user is None:
        user = accounts.create_user(
            spec["username"], email=spec["email"], phone=spec["phone"], name=spec["name"],
            password=DEMO_PASSWORD, is_admin=spec["admin"],
        )
    for client_id, roles in spec["roles"].items():
        for role in roles:
            accounts.grant_role(user, client_id, role)


def seed(instance_path: str, apps: list[dict[str, Any]] | None = None,
         users: list[dict[str, Any]] | None = None) -> dict[str, str]:
    """Create what is missing and commit; return each demo app's client secret by client_id.

    Call inside an app context. ``apps`` and ``users`` default to :data:`DEMO_APPS` and
    :data:`DEMO_USERS` (tests pass apps on free ports).
    """
    path = Path(instance_path) / SECRETS_FILE
    known = _read_secrets(path)
    secrets = {}
    for demo_app in apps if apps is not None else DEMO_APPS:
        secrets[demo_app["client_id"]] = _seed_app(demo_app, known.get(demo_app["client_id"]))
    seeded = {a["client_id"] for a in (apps if apps is not None else DEMO_APPS)}
    for spec in users if users is not None else DEMO_USERS:
        _seed_user({**spec, "roles": {k: v for k, v in spec["roles"].items() if k in seeded}})
    db.session.commit()
    if secrets != {k: known.get(k) for k in secrets}:
        _write_secrets(path, {**known, **secrets})
    return secrets
