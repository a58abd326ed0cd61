"""Protocol records: clients, consents, authorization codes, refresh tokens, revocations.

Secrets are never stored: client secrets, codes and refresh tokens are kept as SHA-256 hashes.
Access tokens are self-contained JWTs (RFC 9068); only revoked ones are remembered, by ``jti``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, false, true
from sqlalchemy.orm import Mapped, mapped_column

from ..dbtypes import UTCDateTime, utcnow
from ..extensions import db
from ..security import hash_token, same

USER_SCOPES = ("openid", "profile", "email", "phone", "offline_access", "roles")


class Client(db.Model):  # type: ignore[name-defined,misc]
    """A registered relying party (Authlib's ``ClientMixin``)."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    #: The app's name for Chinese readers; ``name`` serves everyone else.
    name_zh: Mapped[str | None] = mapped_column(String(128))
    #: The app's logo (RFC 7591 ``logo_uri``), loaded from the app's origin by the pages that
    #: name the app (see ``sso.branding``).
    logo_uri: Mapped[str | None] = mapped_column(String(512))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(Text, default="")
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    #: First-party apps of the company skip the consent page.
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(8), default="RS256")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # The app's sign-in policy (read as one ``flow.AppPolicy``, written only through
    # ``oidc.clients.update_policy``).
    #: How users get an account in the app at their first sign-in: auto, approval, invite.
    activation: Mapped[str] = mapped_column(String(16), default="auto", server_default="auto")
    #: Users need a second factor to sign in to this app.
    mfa_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: A remembered browser may stand in for the second factor here.
    remember_device: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    #: Scan-to-sign-in approvals pick the number the desktop shows.
    qr_number_matching: Mapped[bool] = mapped_column(Boolean, default=False,
                                                     server_default=false())
    #: Scan-to-sign-in approvals from a phone on another network than the desktop's are refused.
    qr_refuse_remote: Mapped[bool] = mapped_column(Boolean, default=False,
                                                   server_default=false())
    #: CIBA token delivery mode registered for this client ("poll", "ping"; None: no CIBA).
    ciba_mode: Mapped[str | None] = mapped_column(String(8))
    #: CIBA ping mode: where the provider says a request was answered.
    ciba_notification_endpoint: Mapped[str | None] = mapped_column(String(512))
    #: Where account events are pushed as Security Event Tokens (RFC 8935); None: not sent.
    events_endpoint: Mapped[str | None] = mapped_column(String(512))
    #: OIDC Back-Channel Logout 1.0: where logout tokens are posted; None: not sent.
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(512))
    #: The app needs ``sid`` in logout tokens (we always send it; this is what it registered).
    backchannel_logout_session_required: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true())
    #: OIDC Front-Channel Logout 1.0: the page the logout page loads in an iframe.
    frontchannel_logout_uri: Mapped[str | None] = mapped_column(String(512))
    #: Add ``iss`` and ``sid`` to the front-channel URI.
    frontchannel_logout_session_required: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true())
    #: The secret before the last rotation, accepted until ``previous_secret_expires_at``
    #: (the overlap window while the app deploys its new secret; ``sso.admin.clients``).
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A disabled app cannot sign anyone in nor redeem anything until enabled again.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Token lifetimes of this app in seconds, overriding ACCESS_TOKEN_TTL, ID_TOKEN_TTL and
    #: the refresh lifetimes (REFRESH_TOKEN_TTL, OFFLINE_REFRESH_TOKEN_TTL); None: the global
    #: setting. Bounds in ``sso.oidc.clients.LIFETIME_BOUNDS``.
    access_token_ttl: Mapped[int | None] = mapped_column(Integer)
    id_token_ttl: Mapped[int | None] = mapped_column(Integer)
    refresh_token_ttl: Mapped[int | None] = mapped_column(Integer)

    def __repr__(self) -> str:
        return f"<Client {self.client_id} {self.name}>"

    def display_name(self, locale: str | None) -> str:
        """The name a reader of ``locale`` sees (``zh-CN`` gets ``name_zh`` when there is one)."""
        if locale and locale.lower().startswith("zh") and self.name_zh:
            return self.name_zh
        return self.name

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    def scopes(self) -> list[str]:
        return self.scope.split()

    # Authlib's ClientMixin.

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only an unambiguous default: with several registered URIs the request must name one.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        """Keep the requested scopes this client may have; unknown ones are ignored."""
        allowed = self.scopes()
        if not scope:
            return " ".join(s for s in allowed if s != "offline_access")
        requested = []
        for item in scope.split():
            if item in allowed and item not in requested:
                requested.append(item)
        return " ".join(requested)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact string match (RFC 9700 §4.1.3, OIDC Core §3.1.2.1)."""
        return any(same(redirect_uri, registered) for registered in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.secret_hash:
            return False
        hashed = hash_token(client_secret)
        if same(hashed, self.secret_hash):
            return True
        expires = self.previous_secret_expires_at
        return bool(self.previous_secret_hash and expires is not None and expires > utcnow()
                    and same(hashed, self.previous_secret_hash))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Public clients authenticate with ``none``; confidential ones with either secret
        method, as most providers allow, so any standard library works unconfigured."""
        if self.is_public:
            return method == "none" and endpoint == "token"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


class Consent(db.Model):  # type: ignore[name-defined,misc]
    """The scopes a user let a third-party client have, remembered for next time."""

    __tablename__ = "consents"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuthorizationCode(db.Model):  # type: ignore[name-defined,misc]
    """A code, single use, bound to its client, redirect URI, PKCE challenge and nonce.

    A consumed code is kept (with ``consumed_at``) until it expires, so that a replay is
    recognised and the tokens issued from it revoked (RFC 6749 §4.1.2).
    """

    __tablename__ = "authorization_codes"
    #: For the nonce's replay check. Led by the nonce so that it can never serve the code
    #: exchange's claim (by hash and client) in the primary key's place (migration 0023).
    __table_args__ = (Index("ix_authorization_codes_nonce_client", "nonce", "client_id"),)

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(String(43), unique=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("clients.client_id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    #: Whether the authorization request named the redirect URI (then /token must repeat it).
    redirect_uri_given: Mapped[bool] = mapped_column(Boolean, default=True)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(255))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(8))
    session_id: Mapped[str | None] = mapped_column(String(43))
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    acr: Mapped[str | None] = mapped_column(String(64))
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RefreshToken(db.Model):  # type: ignore[name-defined,misc]
    """One link of a rotation chain; the chain (family) is the grant it came from.

    Using a token marks it used and issues the next one; using a used token again revokes
    every token of its family (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(43), index=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("clients.client_id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    #: The SSO session it is bound to; None for ``offline_access`` tokens, which outlive it.
    session_id: Mapped[str | None] = mapped_column(String(43), index=True)
    scope: Mapped[str] = mapped_column(Text)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    acr: Mapped[str | None] = mapped_column(String(64))
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: The access token issued together with this refresh token, to revoke it with the family.
    access_jti: Mapped[str] = mapped_column(String(43))
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Once used: the hash of the token its use issued (set by the claim), whose ``answer``
    #: is given again if this token is presented again within ``REFRESH_REUSE_GRACE``. Rows
    #: used before migration 0021, or whose use issued no new token, hold that answer here,
    #: sealed.
    successor: Mapped[str | None] = mapped_column(Text)
    #: The answer that issued this token (its predecessor's use), sealed with the server's
    #: secret, kept for the grace (then ``purge_expired`` clears it).
    answer: Mapped[str | None] = mapped_column(Text)

    # Authlib's TokenMixin, for the refresh grant.

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int((self.expires_at - utcnow()).total_seconds())

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class RevokedAccessToken(db.Model):  # type: ignore[name-defined,misc]
    """A JWT access token revoked before its expiry, kept until it would have expired."""

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(43), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
