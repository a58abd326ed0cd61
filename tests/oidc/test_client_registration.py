"""Client registration refuses redirect URIs the provider could not redirect to later."""

from __future__ import annotations

import pytest

from sso.oidc.clients import ClientError, create_client


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:165536/callback",
    "https://erp.example.com:99999/callback",
    "https://erp.example.com:port/callback",
])
def test_a_redirect_uri_with_an_impossible_port_is_refused(ctx: None, uri: str) -> None:
    with pytest.raises(ClientError, match="port"):
        create_client("ERP", [uri])
    with pytest.raises(ClientError, match="port"):
        create_client("ERP", ["https://erp.example.com/callback"],
                      post_logout_redirect_uris=[uri])
