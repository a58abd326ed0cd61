"""Signing keys in ``keys/``, the JWKS built from them, and compact JWS.

For each algorithm the directory holds one *active* key (signs), one *next* key (published in
the JWKS but not yet signing, so relying parties have it cached before it signs) and any
*retired* keys (no longer signing, published until every token they signed has expired).
``keyset.json`` records which file plays which part; ``sso keys rotate`` moves each key one
step along: next → active → retired, and adds a fresh next key.

The ``kid`` is the key's RFC 7638 thumbprint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
#: How often a worker looks at the manifest for a rotation done by another process.
RELOAD_INTERVAL = 5.0

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


@dataclass
class SigningKey:
    kid: str
    alg: str
    state: str
    private: PrivateKey
    retired_at: float | None = None

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def verify(self, data: bytes, signature: bytes) -> bool:
        public = self.private.public_key()
        try:
            if isinstance(public, rsa.RSAPublicKey):
                public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            else:
                if len(signature) != 64:
                    return False
                der = encode_dss_signature(
                    int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                )
                public.verify(der, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def jwk(self) -> dict[str, str]:
        return {**public_jwk(self.private.public_key()), "kid": self.kid, "alg": self.alg,
                "use": "sig"}


class KeyStoreError(RuntimeError):
    pass


class KeyStore:
    """The keys of one ``keys/`` directory, reloaded when another process rotates them."""

    def __init__(self, directory: str, retirement_grace: int) -> None:
        self.directory = Path(directory)
        self.retirement_grace = retirement_grace
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._checked = 0.0
        self._keys: dict[str, SigningKey] = {}
        self._active: dict[str, SigningKey] = {}
        self.jwks_json = b""

    # Files.

    def _manifest_path(self) -> Path:
        return self.directory / MANIFEST

    def _read_manifest(self) -> dict[str, Any]:
        path = self._manifest_path()
        if not path.exists():
            return {"keys": []}
        return json.loads(path.read_text())  # type: ignore[no-any-return]

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        tmp = self.directory / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, self._manifest_path())

    def _new_entry(self, alg: str, state: str) -> dict[str, Any]:
        key = generate(alg)
        kid = thumbprint(key.public_key())
        filename = f"{alg}-{kid}.pem"
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = self.directory / filename
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return {"kid": kid, "alg": alg, "file": filename, "state": state,
                "created_at": int(time.time()), "retired_at": None}

    def ensure(self) -> bool:
        """Create the missing keys (first run). Return True when something was created."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with _directory_lock(self.directory):
            manifest = self._read_manifest()
            created = False
            for alg in ALGORITHMS:
                states = {k["state"] for k in manifest["keys"] if k["alg"] == alg}
                for state in (ACTIVE, NEXT):
                    if state not in states:
                        manifest["keys"].append(self._new_entry(alg, state))
                        created = True
            if created:
                self._write_manifest(manifest)
        self.reload(force=True)
        return created

    def rotate(self, algorithms: tuple[str, ...] = ALGORITHMS, now: float | None = None) -> None:
        """Retire the active key, promote the published next key, publish a fresh next key."""
        now = time.time() if now is None else now
        with _directory_lock(self.directory):
            manifest = self._read_manifest()
            for alg in algorithms:
                entries = [k for k in manifest["keys"] if k["alg"] == alg]
                for entry in entries:
                    if entry["state"] == ACTIVE:
                        entry["state"], entry["retired_at"] = RETIRED, int(now)
                for entry in entries:
                    if entry["state"] == NEXT:
                        entry["state"] = ACTIVE
                manifest["keys"].append(self._new_entry(alg, NEXT))
            manifest["keys"] = self._prune(manifest["keys"], now)
            self._write_manifest(manifest)
        self.reload(force=True)

    def _prune(self, entries: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        kept = []
        for entry in entries:
            retired = entry["state"] == RETIRED and entry["retired_at"] is not None
            if retired and entry["retired_at"] + self.retirement_grace < now:
                (self.directory / entry["file"]).unlink(missing_ok=True)
                continue
            kept.append(entry)
        return kept

    def describe(self) -> list[dict[str, Any]]:
        return self._read_manifest()["keys"]  # type: ignore[no-any-return]

    # Loading.

    def reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_INTERVAL:
            return
        with self._lock:
            self._checked = now
            try:
                mtime = self._manifest_path().stat().st_mtime
            except FileNotFoundError as exc:
                raise KeyStoreError(
                    f"no signing keys in {self.directory}: run `sso init` (or `sso keys generate`)"
                ) from exc
            if not force and mtime == self._mtime:
                return
            keys: dict[str, SigningKey] = {}
            active: dict[str, SigningKey] = {}
            wall = time.time()
            for entry in self._read_manifest()["keys"]:
                if entry["state"] == RETIRED and (
                    entry["retired_at"] + self.retirement_grace < wall
                ):
                    continue
                pem = (self.directory / entry["file"]).read_bytes()
                private = serialization.load_pem_private_key(pem, password=None)
                if not isinstance(private, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
                    raise KeyStoreError(f"{entry['file']} is not an RSA or P-256 key")
                key = SigningKey(entry["kid"], entry["alg"], entry["state"], private,
                                 entry.get("retired_at"))
                keys[key.kid] = key
                if key.state == ACTIVE:
                    active[key.alg] = key
            missing = [alg for alg in ALGORITHMS if alg not in active]
            if missing:
                raise KeyStoreError(f"no active {', '.join(missing)} key in {self.directory}")
            self._keys, self._active, self._mtime = keys, active, mtime
            order = {ACTIVE: 0, NEXT: 1, RETIRED: 2}
            ordered = sorted(keys.values(), key=lambda k: (order[k.state], k.alg))
            self.jwks_json = json.dumps(
                {"keys": [k.jwk() for k in ordered]}, separators=(",", ":")
            ).encode()

    def active(self, alg: str) -> SigningKey:
        self.reload()
        return self._active[alg]

    def by_kid(self, kid: str) -> SigningKey | None:
        self.reload()
        return self._keys.get(kid)

    def jwks(self) -> bytes:
        self.reload()
        return self.jwks_json


class _directory_lock:  # noqa: N801 - used as a context manager
    """An exclusive lock on the keys directory, so two `sso` commands cannot race."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"

    def __enter__(self) -> None:
        import fcntl  # noqa: PLC0415

        self.fh = open(self.path, "w")  # noqa: SIM115
        fcntl.flock(self.fh, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        self.fh.close()


def _json_segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def encode_jws(key: SigningKey, claims: dict[str, Any], typ: str = "JWT") -> str:
    header = {"alg": key.alg, "kid": key.kid, "typ": typ}
    signing_input = f"{_json_segment(header)}.{_json_segment(claims)}".encode("ascii")
    return signing_input.decode("ascii") + "." + b64url(key.sign(signing_input))


class InvalidJWS(ValueError):
    pass


def decode_jws(store: KeyStore, token: str, typ: str | None = None) -> dict[str, Any]:
    """Verify a compact JWS signed by one of our keys; return its claims (not yet validated)."""
    if not isinstance(token, str) or len(token) > 16384 or token.count(".") != 2:
        raise InvalidJWS("malformed")
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        header = json.loads(b64url_decode(header_b64))
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
        claims = json.loads(b64url_decode(payload_b64))
    except ValueError as exc:
        raise InvalidJWS("malformed") from exc
    if not isinstance(claims, dict):
        raise InvalidJWS("malformed")
    return claims


def half_hash(value: str, alg: str) -> str:
    """``at_hash``/``c_hash``: left half of the SHA-256 of the ASCII value (OIDC Core §3.1.3.6)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])
