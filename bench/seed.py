"""Seed a provider for the benchmark: schema, keys, one client, one signed-in user.

Run with the same ``SSO_*`` environment as the server under test; prints one JSON object
(client id and secret, the SSO session cookie) for ``bench/run.py``.
"""

from __future__ import annotations

import json
import sys

from sso import create_app, migrate
from sso.accounts.service import create_user
from sso.audit import Origin
from sso.dbtypes import utcnow
from sso.extensions import db
from sso.oidc.clients import create_client
from sso.sessions import service as sessions
from sso.sessions.models import Proof

REDIRECT_URI = "http://127.0.0.1:9/callback"
SCOPE = "openid profile email offline_access api"


def main() -> None:
    app = create_app()
    migrate.upgrade(app)
    with app.app_context():
        app.extensions["sso_keys"].ensure()
        user = create_user("bench-user", email="bench-user@example.com", name="Bench User")
        client, secret = create_client(
            "bench", [REDIRECT_URI], grant_types=["authorization_code", "refresh_token",
                                                  "client_credentials"],
            scope=SCOPE, first_party=True,
        )
        # The code flow workload is "a user who is already signed in": open the SSO session
        # directly, as a sign-in method would at its end.
        _session, cookie = sessions.sign_in(
            user, [Proof("pwd", utcnow())], lifetime=app.config["SESSION_TTL"],
            origin=Origin("127.0.0.1"),
        )
        db.session.commit()
        json.dump({"client_id": client.client_id, "client_secret": secret,
                   "cookie": f"sso_session={cookie}", "redirect_uri": REDIRECT_URI},
                  sys.stdout)


if __name__ == "__main__":
    main()
