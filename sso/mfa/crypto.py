"""Encryption of TOTP seeds at rest (Fernet: AES-128-CBC + HMAC-SHA256).

``MFA_ENCRYPTION_KEYS`` is a comma-separated list of secrets (or a JSON list). Each secret,
whatever its form, becomes a Fernet key through HKDF-SHA256, so ``openssl rand -hex 32`` output
works as well as a Fernet key. The first key encrypts; every key decrypts, which is what lets
keys rotate: put the new key first, run ``sso mfa rotate-key``, then drop the old one. Unset,
the single key is derived from ``SECRET_KEY``.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

HKDF_SALT = b"sso.mfa.totp-seed"


class UndecryptableSecret(RuntimeError):
    """No configured key opens this seed (a key was removed before ``sso mfa rotate-key``)."""


def key_materials(config: Any) -> list[str]:
    raw = config.get("MFA_ENCRYPTION_KEYS")
    if isinstance(raw, list | tuple):
        items = [str(item) for item in raw]
    elif raw:
        items = str(raw).split(",")
    else:
        items = [str(config["SECRET_KEY"])]
    keys = [item.strip() for item in items if item.strip()]
    if not keys:
        raise ValueError("SSO_MFA_ENCRYPTION_KEYS holds no key")
    return keys


def fernet_key(material: str) -> bytes:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT,
                   info=b"fernet").derive(material.encode())
    return base64.urlsafe_b64encode(derived)


def box(config: Any | None = None) -> MultiFernet:
    config = config if config is not None else current_app.config
    return MultiFernet([Fernet(fernet_key(m)) for m in key_materials(config)])


def encrypt(seed: str) -> str:
    return box().encrypt(seed.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return box().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise UndecryptableSecret("no key in SSO_MFA_ENCRYPTION_KEYS opens this seed") from error


def rotate(token: str) -> str:
    """Re-encrypt with the first key (a no-op in effect when it already is)."""
    try:
        return box().rotate(token.encode()).decode()
    except InvalidToken as error:
        raise UndecryptableSecret("no key in SSO_MFA_ENCRYPTION_KEYS opens this seed") from error
