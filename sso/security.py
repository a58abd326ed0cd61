"""Random tokens, their hashes, and password hashing.

Random secrets (codes, refresh tokens, client secrets, links) carry 256 bits of entropy, so a
single SHA-256 is the right hash for them: a slow hash would only cost time on every request.
Passwords are the only low-entropy secret and get argon2id.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


def new_token(prefix: str = "", nbytes: int = 32) -> str:
    """Return ``prefix`` + a URL-safe random string (``ssor_...`` for refresh tokens)."""
    return prefix + secrets.token_urlsafe(nbytes)


def hash_token(token: str) -> str:
    """SHA-256 hex digest, the stored form of a random token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same(a: str | bytes, b: str | bytes) -> bool:
    """Compare secrets in constant time."""
    if isinstance(a, str):
        a = a.encode("utf-8", "surrogatepass")
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(a, b)


class PasswordHashing:
    """argon2id with configurable cost; rehashes transparently when the cost changes."""

    def __init__(self, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        # Verifying against this when a user does not exist costs the same time as a real
        # check, so response time does not reveal which usernames exist.
        self._decoy = self.hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self.hasher.verify(stored or self._decoy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True
