"""The authorization code flow end to end, through the test client."""

from __future__ import annotations

from typing import Any

from tests.conftest import ISSUER, Flow


def test_code_flow_issues_verifiable_tokens(flow: Flow, app: Any, alice: Any, erp: Any) -> None:
    result = flow.authorize()
    assert result["state"] == flow.params["state"]
    assert result["iss"] == ISSUER
    response = flow.token(result["code"])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["refresh_token"].startswith("ssor_")
    assert response.headers["Cache-Control"] == "no-store"
    with app.app_context():
        from sso.oidc.keys import decode_jws

        keys = app.extensions["sso_keys"]
        id_claims = decode_jws(keys, body["id_token"])
        assert id_claims["sub"] == alice.subject
        assert id_claims["aud"] == erp.client_id
        assert id_claims["nonce"] == flow.params["nonce"]
        assert id_claims["amr"] == ["pwd"]
        assert {"iss", "exp", "iat", "auth_time", "at_hash", "acr", "sid"} <= set(id_claims)
        access = decode_jws(keys, body["access_token"], typ="at+jwt")
        assert access["client_id"] == erp.client_id
    userinfo = flow.http.get("/userinfo",
                             headers={"Authorization": f"Bearer {body['access_token']}"})
    assert userinfo.status_code == 200
    assert userinfo.get_json()["preferred_username"] == "alice"
