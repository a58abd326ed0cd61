"""panva's openid-client (npm, v6, OpenID certified) as the relying party.

``npm install`` puts it in ``tests/interop/node/node_modules`` (git-ignored) at test time;
without node/npm the test skips, unless SSO_TEST_REQUIRE_INTEROP=1 (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sso.demo.seed import DEMO_PASSWORD
from tests.conftest import LiveProvider, free_port
from tests.interop.conftest import SeededApp, require_interop

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="session")
def openid_client() -> Path:
    """The node project with openid-client installed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        require_interop("node/npm")
    if not (NODE_DIR / "node_modules" / "openid-client" / "package.json").exists():
        command = "ci" if (NODE_DIR / "package-lock.json").exists() else "install"
        result = subprocess.run(
            [str(npm), command, "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
            capture_output=True, text=True, timeout=300, check=False,
        )
        assert result.returncode == 0, f"npm {command} failed:\n{result.stderr[-2000:]}"
    return NODE_DIR


def _variant_client(live: LiveProvider, erp: SeededApp, auth_method: str, alg: str
                    ) -> tuple[str, str, str]:
    """(client_id, secret, base url) of a client for this variant: the seeded ERP app, or a
    client registered for it (public, or with ES256 ID tokens) that has ERP's roles."""
    if auth_method == "client_secret_basic" and alg == "RS256":
        return erp.client_id, erp.secret, erp.url
    from sso.extensions import db
    from sso.oidc.clients import create_client
    from sso.users import service as users

    base = f"http://127.0.0.1:{free_port()}"  # nothing listens: the test stops at the redirect
    with live.app.app_context():
        client, secret = create_client(
            f"Node {auth_method} {alg}", [f"{base}/callback"],
            post_logout_redirect_uris=[f"{base}/"], public=auth_method == "none",
            first_party=True, id_token_alg=alg,
        )
        for role in ("accountant", "approver"):
            users.define_role(client.client_id, role)
            alice = users.find_by_login("alice")
            assert alice is not None
            users.grant_role(alice, client.client_id, role)
        db.session.commit()
        return client.client_id, secret or "", base


@pytest.mark.parametrize(("auth_method", "alg"), [
    ("client_secret_basic", "RS256"),
    ("client_secret_post", "ES256"),
    ("none", "RS256"),
])
def test_openid_client_code_flow_and_token_lifecycle(
        openid_client: Path, live_provider: LiveProvider, erp_app: SeededApp, auth_method: str,
        alg: str) -> None:
    client_id, secret, base = _variant_client(live_provider, erp_app, auth_method, alg)
    env = {
        **os.environ, "ISSUER": live_provider.url, "CLIENT_ID": client_id,
        "CLIENT_SECRET": secret, "REDIRECT_URI": f"{base}/callback",
        "POST_LOGOUT_REDIRECT_URI": f"{base}/", "AUTH_METHOD": auth_method,
        "ID_TOKEN_ALG": alg, "USERNAME": "alice", "PASSWORD": DEMO_PASSWORD,
    }
    result = subprocess.run(["node", "rp.mjs"], cwd=openid_client, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    seen: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])

    assert seen["iss_in_callback"] == live_provider.url
    assert seen["id_token_alg"] == alg
    id_token = seen["id_token"]
    assert id_token["iss"] == live_provider.url and id_token["aud"] == client_id
    assert sorted(id_token["roles"]) == ["accountant", "approver"]
    assert seen["userinfo"]["sub"] == id_token["sub"]
    assert seen["userinfo"]["email"] == "alice@example.com"
    access = seen["access_token"]
    assert access["sub"] == id_token["sub"] and access["client_id"] == client_id
    assert seen["refresh_rotated"] is True
    assert seen["refreshed_id_token_sub"] in (None, id_token["sub"])
    assert seen["introspection_active_before"] is True
    assert seen["introspection_active_after"] is False
    assert seen["refresh_after_revocation"] == "invalid_grant"
    assert seen["logout_status"] == 302
    assert seen["logout_location"] == f"{base}/?state=bye-state"
