"""Which user claims each scope releases (OIDC Core §5.4), and the app's roles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..users.models import User

if TYPE_CHECKING:  # tokens imports this module
    from .tokens import TokenUser

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "preferred_username", "locale", "updated_at"),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "roles": ("roles",),
}
CLAIMS_SUPPORTED = sorted(
    {"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp",
     "at_hash"} | {c for claims in SCOPE_CLAIMS.values() for c in claims}
)


def user_claims(user: User | TokenUser, scopes: list[str] | tuple[str, ...],
                client_id: str) -> dict[str, Any]:
    """``sub`` plus what ``scopes`` release; ``roles`` are the user's roles in this app only.
    ``user``: the ORM user or the columns of one (``tokens.TokenUser``)."""
    claims: dict[str, Any] = {"sub": user.subject}
    if "profile" in scopes:
        claims["preferred_username"] = user.username
        if user.name:
            claims["name"] = user.name
        if user.locale:
            claims["locale"] = user.locale
        claims["updated_at"] = int(user.updated_at.timestamp())
    if "email" in scopes and user.email:
        claims["email"] = user.email
        claims["email_verified"] = bool(user.email_verified)
    if "phone" in scopes and user.phone:
        claims["phone_number"] = user.phone
        claims["phone_number_verified"] = bool(user.phone_verified)
    if "roles" in scopes:
        claims["roles"] = user.roles_in(client_id)
    return claims
