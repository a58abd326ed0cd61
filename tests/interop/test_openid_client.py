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
from tests.conftest import LiveProvider
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


def test_openid_client_code_flow_and_token_lifecycle(
        openid_client: Path, live_provider: LiveProvider, erp_app: SeededApp) -> None:
    env = {
        **os.environ, "ISSUER": live_provider.url, "CLIENT_ID": erp_app.client_id,
        "CLIENT_SECRET": erp_app.secret, "REDIRECT_URI": erp_app.redirect_uri,
        "POST_LOGOUT_REDIRECT_URI": erp_app.post_logout_redirect_uri,
        "USERNAME": "alice", "PASSWORD": DEMO_PASSWORD,
    }
    result = subprocess.run(["node", "rp.mjs"], cwd=openid_client, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    seen: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])

    assert seen["iss_in_callback"] == live_provider.url
    id_token = seen["id_token"]
    assert id_token["iss"] == live_provider.url and id_token["aud"] == erp_app.client_id
    assert sorted(id_token["roles"]) == ["accountant", "approver"]
    assert seen["userinfo"]["sub"] == id_token["sub"]
    assert seen["userinfo"]["email"] == "alice@example.com"
    access = seen["access_token"]
    assert access["sub"] == id_token["sub"] and access["client_id"] == erp_app.client_id
    assert seen["refresh_rotated"] is True
    assert seen["refreshed_id_token_sub"] in (None, id_token["sub"])
    assert seen["introspection_active_before"] is True
    assert seen["introspection_active_after"] is False
    assert seen["refresh_after_revocation"] == "invalid_grant"
    assert seen["logout_status"] == 302
    assert seen["logout_location"] == f"{erp_app.post_logout_redirect_uri}?state=bye-state"
