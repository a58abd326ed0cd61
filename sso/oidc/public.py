"""What the rest of the provider may use of the protocol; everything else in ``sso.oidc`` is
internal. Method packages (accounts, mfa, qrlogin, apps) and the admin services import from
here and from :mod:`.protector` only (a test checks it)."""

from __future__ import annotations

from .ciba import Pending as CIBARequest
from .ciba import decide as decide_ciba
from .ciba import get_pending as get_ciba_request
from .ciba import pending_for as ciba_requests
from .claims import user_claims
from .clients import ClientError, get, policy_of, update_policy
from .models import Client
from .protector import BearerError, require
from .secevent import MEDIA_TYPE as SET_MEDIA_TYPE
from .secevent import encode_set
from .server import query_cached_client as cached_client
from .signals import ACCOUNT_DISABLED, CREDENTIAL_CHANGE, signal
from .singlelogout import frontchannel_uris
from .tokens import revoke_grants
from .userapps import AppAccess, access_of, forget_app, revoke_grant

__all__ = [
    "CIBARequest", "ciba_requests", "decide_ciba", "get_ciba_request",
    "ACCOUNT_DISABLED", "CREDENTIAL_CHANGE", "signal",
    "AppAccess", "access_of", "forget_app", "frontchannel_uris", "revoke_grant",
    "SET_MEDIA_TYPE", "BearerError", "Client", "ClientError", "cached_client", "encode_set",
    "get",
    "policy_of", "require", "revoke_grants", "update_policy", "user_claims",
]
