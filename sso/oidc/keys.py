"""Signing keys as objects, their JWKs, compact JWS, and the key directory format.

For each algorithm there is one *active* key (signs), one *next* key (published in the JWKS
but not yet signing, so relying parties have it cached before it signs) and any *retired*
keys (no longer signing, published until every token they signed has expired). Where they are
kept, and how a rotation reaches every node, is :mod:`.keystore`'s business (the database).

The ``kid`` is the key's RFC 7638 thumbprint.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

ALGORITHMS = ("RS256", "ES256")
MANIFEST = "keyset.json"
ACTIVE, NEXT, RETIRED = "active", "next", "retired"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not text or not _B64URL.issuperset(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _uint(value: int, length: int | None = None) -> str:
    length = length or (value.bit_length() + 7) // 8
    return b64url(value.to_bytes(length, "big"))


def public_jwk(key: PublicKey) -> dict[str, str]:
    """The JWK members that RFC 7638 hashes, in the order it requires."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {"e": _uint(numbers.e), "kty": "RSA", "n": _uint(numbers.n)}
    numbers = key.public_numbers()
    return {"crv": "P-256", "kty": "EC", "x": _uint(numbers.x, 32), "y": _uint(numbers.y, 32)}


def thumbprint(key: PublicKey) -> str:
    canonical = json.dumps(public_jwk(key), separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def generate(alg: str) -> PrivateKey:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unsupported algorithm {alg}")


# The algorithm objects are stateless: one each, not one per signature.
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


@dataclass
class SigningKey:
    kid: str
    alg: str
    state: str
    private: PrivateKey
    retired_at: float | None = None
    created_at: float | None = None

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(data, _PKCS1, _SHA256)
        r, s = decode_dss_signature(self.private.sign(data, _ECDSA_SHA256))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def verify(self, data: bytes, signature: bytes) -> bool:
        public = self.private.public_key()
        try:
            if isinstance(public, rsa.RSAPublicKey):
                public.verify(signature, data, _PKCS1, _SHA256)
            else:
                if len(signature) != 64:
                    return False
                der = encode_dss_signature(
                    int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                )
                public.verify(der, data, _ECDSA_SHA256)
        except InvalidSignature:
            return False
        return True

    def jwk(self) -> dict[str, str]:
        return {**public_jwk(self.private.public_key()), "kid": self.kid, "alg": self.alg,
                "use": "sig"}


class KeyStoreError(RuntimeError):
    pass


class KeySource(Protocol):
    """What verifying a JWS needs: our key of a given ``kid`` (:class:`.keystore.KeyStore`)."""

    def by_kid(self, kid: str) -> SigningKey | None: ...


# The directory format of ``sso keys export`` and ``import`` (and of the ``keys/`` folder that
# kept the keys before they moved into the database): one PKCS#8 PEM file per key and a
# ``keyset.json`` manifest naming each file's kid, algorithm and state.


def load_private_pem(pem: bytes, name: str = "key") -> PrivateKey:
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise KeyStoreError(f"{name} is not an unencrypted PEM private key") from error
    if isinstance(private, rsa.RSAPrivateKey):
        return private
    if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1":
        return private
    raise KeyStoreError(f"{name} is not an RSA or P-256 key")


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def read_directory(directory: str | Path) -> list[SigningKey]:
    """The keys of a ``keyset.json`` directory (empty when it has no manifest)."""
    folder = Path(directory)
    path = folder / MANIFEST
    if not path.is_file():
        return []
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        entries = manifest["keys"]
    except (ValueError, KeyError, TypeError) as error:
        raise KeyStoreError(f"{path} is not a keyset manifest") from error
    found = []
    for entry in entries:
        if entry.get("alg") not in ALGORITHMS or entry.get("state") not in (ACTIVE, NEXT,
                                                                             RETIRED):
            raise KeyStoreError(f"{path}: unknown algorithm or state in {entry!r}")
        file = folder / Path(str(entry["file"])).name
        private = load_private_pem(file.read_bytes(), str(file))
        kid = thumbprint(private.public_key())
        wanted = rsa.RSAPrivateKey if entry["alg"] == "RS256" else ec.EllipticCurvePrivateKey
        if not isinstance(private, wanted):
            raise KeyStoreError(f"{file} does not hold an {entry['alg']} key")
        found.append(SigningKey(kid, entry["alg"], entry["state"], private,
                                entry.get("retired_at"), entry.get("created_at")))
    return found


def write_directory(directory: str | Path, keys: list[SigningKey]) -> Path:
    """Write ``keys`` as PEM files (readable by their owner only) and a ``keyset.json``."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for key in keys:
        filename = f"{key.alg}-{key.kid}.pem"
        fd = os.open(folder / filename, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem(key.private))
        entries.append({"kid": key.kid, "alg": key.alg, "file": filename, "state": key.state,
                        "created_at": key.created_at, "retired_at": key.retired_at})
    partial = folder / (MANIFEST + ".tmp")
    partial.write_text(json.dumps({"keys": entries}, indent=2), encoding="utf-8")
    os.replace(partial, folder / MANIFEST)
    return folder / MANIFEST


def _json_segment(value: dict[str, Any]) -> str:
    """A JOSE header or payload: compact JSON in UTF-8, as ``json.dumps`` with
    ``separators=(",", ":")`` and ``ensure_ascii=False`` writes it, by orjson (a fifth of
    the time; a date or a dataclass is refused, as ``json.dumps`` refuses them)."""
    return b64url(orjson.dumps(value, option=_STRICT))


#: orjson options that refuse what ``json.dumps`` refuses rather than write it its own way.
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


@functools.lru_cache(maxsize=64)
def _header_segment(alg: str, kid: str, typ: str) -> str:
    return _json_segment({"alg": alg, "kid": kid, "typ": typ})


def encode_jws(key: SigningKey, claims: dict[str, Any], typ: str = "JWT") -> str:
    signing_input = f"{_header_segment(key.alg, key.kid, typ)}.{_json_segment(claims)}".encode(
        "ascii")
    return signing_input.decode("ascii") + "." + b64url(key.sign(signing_input))


class InvalidJWS(ValueError):
    pass


def decode_jws(store: KeySource, token: str, typ: str | None = None) -> dict[str, Any]:
    """Verify a compact JWS signed by one of our keys; return its claims (not yet validated)."""
    if not isinstance(token, str) or len(token) > 16384 or token.count(".") != 2:
        raise InvalidJWS("malformed")
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        header = orjson.loads(b64url_decode(header_b64))
        signature = b64url_decode(signature_b64)
    except ValueError as exc:
        raise InvalidJWS("malformed") from exc
    if not isinstance(header, dict):
        raise InvalidJWS("malformed")
    key = store.by_kid(str(header.get("kid")))
    if key is None or header.get("alg") != key.alg:
        raise InvalidJWS("unknown key")
    if typ is not None and str(header.get("typ", "")).lower() not in (typ, "application/" + typ):
        raise InvalidJWS("wrong type")
    if not key.verify(f"{header_b64}.{payload_b64}".encode("ascii"), signature):
        raise InvalidJWS("bad signature")
    try:
        claims = orjson.loads(b64url_decode(payload_b64))
    except ValueError as exc:
        raise InvalidJWS("malformed") from exc
    if not isinstance(claims, dict):
        raise InvalidJWS("malformed")
    return claims


def half_hash(value: str, alg: str) -> str:
    """``at_hash``/``c_hash``: left half of the SHA-256 of the ASCII value (OIDC Core §3.1.3.6)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])
