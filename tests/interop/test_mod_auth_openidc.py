"""Apache's mod_auth_openidc (Debian's libapache2-mod-auth-openidc, an OpenID certified RP)
protecting a location with the provider.

apache2 runs as our child in the foreground (``-X``) from a generated configuration with its
own ServerRoot on a free port. A requests session plays the browser: it asks for the protected
page, signs in on the provider's form, and reads the claims Apache passes on. Without apache2
or the module the test skips, unless SSO_TEST_REQUIRE_INTEROP=1 (CI) makes that a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from sso.demo.seed import DEMO_PASSWORD
from tests.conftest import LiveProvider, free_port
from tests.interop.conftest import browse_until, require_interop, seed_demo_app

APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
CLIENT_ID = "apache-intranet"

CONFIG = """\
ServerRoot "{root}"
ServerName 127.0.0.1:{port}
Listen 127.0.0.1:{port}
DefaultRuntimeDir "{root}/run"
PidFile "{root}/run/apache2.pid"
ErrorLog "{root}/error.log"
LogLevel warn auth_openidc:info
{user}
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authz_user_module {modules}/mod_authz_user.so
LoadModule headers_module {modules}/mod_headers.so
LoadModule auth_openidc_module {modules}/mod_auth_openidc.so
DocumentRoot "{root}/htdocs"
<Directory "{root}/htdocs">
  Require all granted
</Directory>

OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration
OIDCClientID {client_id}
OIDCClientSecret {client_secret}
OIDCRedirectURI http://127.0.0.1:{port}/protected/redirect_uri
OIDCCryptoPassphrase {passphrase}
OIDCScope "openid profile email roles"
OIDCPKCEMethod S256
OIDCProviderTokenEndpointAuth {auth_method}
OIDCRemoteUserClaim preferred_username
OIDCPassClaimsAs both
OIDCInfoHook iat access_token id_token userinfo session
OIDCSessionType server-cache

<Location /protected>
  AuthType openid-connect
  Require valid-user
  Header always set X-Seen-Sub "%{{OIDC_CLAIM_sub}}e"
  Header always set X-Seen-Email "%{{OIDC_CLAIM_email}}e"
  Header always set X-Seen-Roles "%{{OIDC_CLAIM_roles}}e"
  Header always set X-Seen-Name "%{{OIDC_CLAIM_name}}e"
</Location>
"""


@dataclass
class Apache:
    url: str
    root: Path


def _client_for_apache(live: LiveProvider, port: int) -> str:
    from sso.extensions import db
    from sso.oidc.clients import create_client
    from sso.users import service as users

    base = f"http://127.0.0.1:{port}"
    with live.app.app_context():
        _client, secret = create_client(
            "Intranet (Apache)", [f"{base}/protected/redirect_uri"],
            post_logout_redirect_uris=[f"{base}/"], first_party=True, client_id=CLIENT_ID,
            scope="openid profile email roles",
        )
        users.define_role(CLIENT_ID, "reader")
        users.define_role(CLIENT_ID, "editor")
        alice = users.find_by_login("alice")
        assert alice is not None
        users.grant_role(alice, CLIENT_ID, "reader")
        users.grant_role(alice, CLIENT_ID, "editor")
        db.session.commit()
    assert secret is not None
    return secret


@pytest.fixture(params=["client_secret_basic", "client_secret_post"])
def apache(request: pytest.FixtureRequest, live_provider: LiveProvider) -> Iterator[Apache]:
    if not Path(APACHE).exists() or not (MODULES / "mod_auth_openidc.so").exists():
        require_interop("apache2 with mod_auth_openidc (libapache2-mod-auth-openidc)")
    seed_demo_app(live_provider, 0)  # the demo users
    port = free_port()
    secret = _client_for_apache(live_provider, port)
    # Not under pytest's 0700 tmp folder: as root, Apache's worker runs as nobody.
    root = Path(tempfile.mkdtemp(prefix="sso-apache-"))
    (root / "run").mkdir()
    (root / "htdocs" / "protected").mkdir(parents=True)
    (root / "htdocs" / "protected" / "index.html").write_text("<p>intranet</p>\n")
    user = "User nobody\nGroup nogroup" if os.geteuid() == 0 else ""
    if user:
        for path in (root, root / "htdocs", root / "htdocs" / "protected"):
            path.chmod(0o755)
        (root / "htdocs" / "protected" / "index.html").chmod(0o644)
    (root / "apache2.conf").write_text(CONFIG.format(
        root=root, port=port, user=user, modules=MODULES, issuer=live_provider.url,
        client_id=CLIENT_ID, client_secret=secret, passphrase=secrets.token_hex(16),
        auth_method=request.param))
    process = subprocess.Popen(
        [APACHE, "-X", "-d", str(root), "-f", str(root / "apache2.conf")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                log = (root / "error.log").read_text() if (root / "error.log").exists() else ""
                pytest.fail(f"apache2 exited:\n{output}\n{log}")
            try:
                requests.get(f"{url}/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield Apache(url, root)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
        shutil.rmtree(root, ignore_errors=True)


def _error_log(apache: Apache) -> str:
    path = apache.root / "error.log"
    return path.read_text()[-3000:] if path.exists() else ""


def test_mod_auth_openidc_signs_in_passes_claims_and_logs_out(
        apache: Apache, live_provider: LiveProvider) -> None:
    from sso.users.service import find_by_login

    browser = requests.Session()
    protected = f"{apache.url}/protected/index.html"
    callback = browse_until(browser, protected, f"{apache.url}/protected/redirect_uri",
                            "alice", DEMO_PASSWORD)
    assert "code=" in callback
    # Back from the provider: Apache swaps the code for tokens and sends us to the page.
    page = browser.get(callback, timeout=10)
    assert page.url == protected
    assert page.status_code == 200, _error_log(apache)
    assert "intranet" in page.text
    with live_provider.app.app_context():
        alice: Any = find_by_login("alice")
        subject = alice.subject
    assert page.headers["X-Seen-Sub"] == subject
    assert page.headers["X-Seen-Email"] == "alice@example.com"
    assert page.headers["X-Seen-Name"] == "Alice"
    assert sorted(page.headers["X-Seen-Roles"].split(",")) == ["editor", "reader"]

    # What the module keeps about the sign-in: the validated ID token and userinfo.
    info = browser.get(f"{apache.url}/protected/redirect_uri", params={"info": "json"},
                       timeout=10)
    assert info.status_code == 200, _error_log(apache)
    session = info.json()
    assert session["id_token"]["iss"] == live_provider.url
    assert session["id_token"]["aud"] == CLIENT_ID
    assert session["id_token"]["sub"] == subject
    assert session["userinfo"]["sub"] == subject
    assert session["access_token"]

    # Its logout goes through the provider's end_session_endpoint and comes back.
    bye = browser.get(f"{apache.url}/protected/redirect_uri",
                      params={"logout": f"{apache.url}/"}, allow_redirects=False, timeout=10)
    assert bye.status_code in (302, 303), _error_log(apache)
    end_session = bye.headers["Location"]
    assert end_session.startswith(f"{live_provider.url}/logout?")
    assert "id_token_hint=" in end_session
    back = browser.get(end_session, allow_redirects=False, timeout=10)
    assert back.status_code == 302 and back.headers["Location"].startswith(f"{apache.url}/")
    # Signed out at both ends: the protected page sends the browser to the provider again.
    again = browser.get(protected, allow_redirects=False, timeout=10)
    assert again.status_code == 302
    assert again.headers["Location"].startswith(f"{live_provider.url}/authorize?")
