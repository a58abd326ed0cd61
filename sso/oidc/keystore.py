"""Signing keys in the database, the same on every node.

Every node reads the keys from the ``signing_keys`` table, so all of them publish one JWKS and
sign with one active key per algorithm. The private parts are encrypted at rest (Fernet) under
the key-encryption key, ``SSO_KEY_ENCRYPTION_KEY`` (or ``SSO_KEY_ENCRYPTION_KEY_FILE``): a list
of secrets whose first encrypts and all decrypt, so the key-encryption key rotates by putting a
new secret first and running ``sso keys reencrypt``.

A node keeps the decrypted keys in memory. A change (rotation, import, first keys) is committed
to the database and then announced by writing the key set's *fingerprint* to Redis
(``{prefix}keys:generation``); every node compares that value with its own at most every
``SSO_KEYS_CHECK_INTERVAL`` seconds (one GET, no SQL) and reloads from the database when they
differ. With Redis unreachable a node rereads the database every :data:`REDIS_DOWN_RELOAD`
seconds instead. The database is the record; Redis only says "look again".

On first use an empty table is filled: with the keys of the old ``keys/`` directory
(``SSO_KEYS_DIR``) if it has a ``keyset.json`` (the migration that made the table imports them
too), else with fresh keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask
from redis.exceptions import RedisError
from sqlalchemy import String, Text, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, mapped_column

from ..dbtypes import UTCDateTime, utcnow
from ..extensions import db
from .keys import (
    ACTIVE,
    ALGORITHMS,
    NEXT,
    RETIRED,
    KeyStoreError,
    SigningKey,
    generate,
    load_private_pem,
    private_pem,
    read_directory,
    thumbprint,
    write_directory,
)

log = logging.getLogger(__name__)

#: Seconds between reloads from the database while Redis cannot say whether anything changed.
REDIS_DOWN_RELOAD = 30.0
#: HKDF salt turning each key-encryption secret into a Fernet key.
KEK_SALT = b"sso.keys.key-encryption"
#: PostgreSQL advisory lock held by whoever changes the key set (two nodes starting at once).
_ADVISORY_LOCK = 0x55D0_4B45

T = TypeVar("T")


class SigningKeyRecord(db.Model):  # type: ignore[name-defined,misc]
    """One signing key; ``private_key`` is its PKCS#8 PEM encrypted under the KEK."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(8))
    private_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


_TABLE = SigningKeyRecord.__table__


def key_encryption_box(secrets: Iterable[str]) -> MultiFernet:
    """The first secret encrypts; every one decrypts. Any string works as a secret (HKDF)."""
    fernets = []
    for secret in secrets:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=KEK_SALT,
                       info=b"fernet").derive(secret.encode())
        fernets.append(Fernet(base64.urlsafe_b64encode(derived)))
    if not fernets:
        raise KeyStoreError("SSO_KEY_ENCRYPTION_KEY holds no key")
    return MultiFernet(fernets)


def encrypt_private(box: MultiFernet, key: SigningKey) -> str:
    return box.encrypt(private_pem(key.private)).decode("ascii")


def record_values(box: MultiFernet, key: SigningKey) -> dict[str, Any]:
    """The row of ``signing_keys`` that stores ``key`` (the migration that imports uses it)."""
    return {
        "kid": key.kid, "alg": key.alg, "state": key.state,
        "private_key": encrypt_private(box, key),
        "created_at": _as_datetime(key.created_at) or utcnow(),
        "retired_at": _as_datetime(key.retired_at),
    }


def _as_datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _as_epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def fingerprint_of(entries: Iterable[tuple[str, str]]) -> str:
    """A short digest of (kid, state) pairs: equal on two nodes exactly when their sets are."""
    text = ";".join(sorted(f"{kid}:{state}" for kid, state in entries))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def new_key(alg: str, state: str) -> SigningKey:
    private = generate(alg)
    return SigningKey(thumbprint(private.public_key()), alg, state, private,
                      created_at=time.time())


class KeyStore:
    """The signing keys of one app (one process may hold several apps on one database)."""

    def __init__(self, app: Flask) -> None:
        config = app.config
        self.retirement_grace = int(config["KEY_RETIREMENT_GRACE"])
        self.check_interval = float(config["KEYS_CHECK_INTERVAL"])
        self.import_directory_path = config["KEYS_DIR"]
        self.box = key_encryption_box(config["KEY_ENCRYPTION_KEYS"])
        self.redis = app.extensions["sso_redis"]
        self._lock = threading.RLock()
        self._keys: dict[str, SigningKey] = {}
        self._active: dict[str, SigningKey] = {}
        self.jwks_json = b""
        self.fingerprint: str | None = None
        self._checked = float("-inf")
        self._loaded = float("-inf")
        #: When the first published retired key's grace ends (epoch seconds).
        self._next_expiry = float("inf")
        #: Called with an error's kind ("redis") when Redis fails; set by the metrics.
        self.on_error: Callable[[str], None] = lambda kind: None

    # What the protocol uses.

    def active(self, alg: str) -> SigningKey:
        self.refresh()
        return self._active[alg]

    def by_kid(self, kid: str) -> SigningKey | None:
        self.refresh()
        return self._keys.get(kid)

    def jwks(self) -> bytes:
        self.refresh()
        return self.jwks_json

    def jwks_if_fresh(self) -> bytes | None:
        """The JWKS without a freshness check, or None when one is due (:meth:`refresh`
        would look at Redis or the database): for answering outside a request."""
        if (self.fingerprint is None or time.monotonic() - self._checked >= self.check_interval
                or time.time() >= self._next_expiry):
            return None
        return self.jwks_json

    # Freshness.

    def _generation_key(self) -> str:
        return self.redis.key("keys", "generation")

    def refresh(self, force: bool = False) -> None:
        """Reload when another process changed the keys (see the module's docstring)."""
        now = time.monotonic()
        if not force and self.fingerprint is not None and now - self._checked < self.check_interval:
            return
        with self._lock:
            if (not force and self.fingerprint is not None
                    and now - self._checked < self.check_interval):
                return
            self._checked = now
            # A retired key's grace ended: it leaves the JWKS without anyone changing a row.
            if force or self.fingerprint is None or time.time() >= self._next_expiry:
                self._load()
                return
            try:
                seen = self.redis.client.get(self._generation_key())
                if seen is None:  # Redis was emptied: say what we have, change nothing
                    self.redis.client.set(self._generation_key(), self.fingerprint, nx=True)
                    return
            except RedisError as error:
                self.on_error("redis")
                if now - self._loaded >= REDIS_DOWN_RELOAD:
                    log.warning("Redis unreachable (%s); signing keys reread from the database",
                                error)
                    self._load()
                return
            if seen.decode() != self.fingerprint:
                self._load()
                if seen.decode() != self.fingerprint:
                    self._announce()  # the database is the record

    def _announce(self) -> None:
        try:
            self.redis.client.set(self._generation_key(), str(self.fingerprint))
        except RedisError as error:
            self.on_error("redis")
            log.warning("could not announce the new signing keys through Redis (%s); other "
                        "nodes see them within %s s", error, REDIS_DOWN_RELOAD)

    # Reading.

    def _rows(self) -> list[Any]:
        """Every row, through the session's connection (a request's own transaction)."""
        query = select(_TABLE.c.kid, _TABLE.c.alg, _TABLE.c.state, _TABLE.c.private_key,
                       _TABLE.c.created_at, _TABLE.c.retired_at)
        try:
            return list(db.session.execute(query).all())
        except DBAPIError as error:
            db.session.rollback()
            raise KeyStoreError("the database has no signing_keys table: run `sso db upgrade`"
                                ) from error

    def _decrypt(self, row: Any) -> SigningKey:
        try:
            pem = self.box.decrypt(row.private_key.encode("ascii"))
        except InvalidToken as error:
            raise KeyStoreError(
                f"no secret in SSO_KEY_ENCRYPTION_KEY opens signing key {row.kid}: put the "
                "secret that encrypted it back in the list") from error
        return SigningKey(row.kid, row.alg, row.state, load_private_pem(pem, row.kid),
                          _as_epoch(row.retired_at), _as_epoch(row.created_at))

    def _live(self, rows: list[Any]) -> list[Any]:
        """The rows still published: retired ones only within the grace period."""
        limit = utcnow() - timedelta(seconds=self.retirement_grace)
        return [r for r in rows
                if not (r.state == RETIRED and r.retired_at is not None and r.retired_at < limit)]

    def _load(self) -> None:
        with self._lock:
            every = self._rows()
            rows = self._live(every)
            if {a for a in ALGORITHMS} - {r.alg for r in rows if r.state == ACTIVE}:
                self._change(self._fill)  # fills what is missing, then loads and announces
                return
            keys: dict[str, SigningKey] = {}
            active: dict[str, SigningKey] = {}
            for row in rows:
                key = self._decrypt(row)
                keys[key.kid] = key
                # Two actives only if someone edited the table by hand: the newest signs.
                current = active.get(key.alg)
                if key.state == ACTIVE and (current is None or (key.created_at or 0)
                                            > (current.created_at or 0)):
                    active[key.alg] = key
            missing = [alg for alg in ALGORITHMS if alg not in active]
            if missing:
                raise KeyStoreError(f"no active {', '.join(missing)} signing key")
            order = {ACTIVE: 0, NEXT: 1, RETIRED: 2}
            ordered = sorted(keys.values(), key=lambda k: (order[k.state], k.alg, k.kid))
            self._keys, self._active = keys, active
            self.jwks_json = json.dumps({"keys": [k.jwk() for k in ordered]},
                                        separators=(",", ":")).encode()
            # Over every row, not the published ones: nodes that disagree on the grace period
            # (or load either side of its end) still agree on what the database holds.
            self.fingerprint = fingerprint_of((r.kid, r.state) for r in every)
            self._loaded = time.monotonic()
            self._next_expiry = min((r.retired_at.timestamp() + self.retirement_grace
                                     for r in rows if r.state == RETIRED and r.retired_at),
                                    default=float("inf"))

    def describe(self) -> list[dict[str, Any]]:
        """Each key's ``kid``, ``alg``, ``state``, ``created_at`` and ``retired_at``, read now."""
        order = {ACTIVE: 0, NEXT: 1, RETIRED: 2}
        rows = sorted(self._live(self._rows()), key=lambda r: (r.alg, order[r.state], r.kid))
        return [{"kid": r.kid, "alg": r.alg, "state": r.state, "created_at": r.created_at,
                 "retired_at": r.retired_at} for r in rows]

    # Changing: one transaction, under a lock, then reload and announce.

    def _change(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in the session's transaction and commit it: a second connection would
        wait on the write lock that the caller's own session may hold (SQLite)."""
        connection = db.session.connection()
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK})")
        else:  # SQLite: take the write lock before reading
            connection.execute(update(_TABLE).where(_TABLE.c.kid.is_(None)).values(kid=None))
        result = work(connection)
        db.session.commit()
        with self._lock:
            self._load()
            self._announce()
        return result

    def _insert(self, connection: Connection, key: SigningKey) -> None:
        connection.execute(insert(_TABLE).values(**record_values(self.box, key)))

    def _fill(self, connection: Connection) -> bool:
        """Import the old key directory into an empty table, then add any missing key."""
        rows = connection.execute(select(_TABLE.c.kid, _TABLE.c.alg, _TABLE.c.state)).all()
        present = {(r.alg, r.state) for r in rows}
        created = False
        if not rows:
            for key in read_directory(self.import_directory_path):
                self._insert(connection, key)
                present.add((key.alg, key.state))
                created = True
            if created:
                log.info("signing keys imported from %s", self.import_directory_path)
        for alg in ALGORITHMS:
            for state in (ACTIVE, NEXT):
                if (alg, state) not in present:
                    self._insert(connection, new_key(alg, state))
                    created = True
        return created

    def ensure(self) -> bool:
        """Create the missing keys (first run). Return True when something was created."""
        return self._change(self._fill)

    def rotate(self, algorithms: Iterable[str] = ALGORITHMS, now: float | None = None) -> None:
        """Retire the active key, promote the published next key, publish a fresh next key."""
        when = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        chosen = list(algorithms)

        def work(connection: Connection) -> None:
            self._fill(connection)
            for alg in chosen:
                connection.execute(update(_TABLE).where(_TABLE.c.alg == alg,
                                                        _TABLE.c.state == ACTIVE)
                                   .values(state=RETIRED, retired_at=when))
                connection.execute(update(_TABLE).where(_TABLE.c.alg == alg,
                                                        _TABLE.c.state == NEXT)
                                   .values(state=ACTIVE))
                self._insert(connection, new_key(alg, NEXT))
            connection.execute(delete(_TABLE).where(
                _TABLE.c.state == RETIRED,
                _TABLE.c.retired_at < when - timedelta(seconds=self.retirement_grace)))

        self._change(work)

    def import_directory(self, directory: str | Path) -> int:
        """Adopt the keys of a ``keyset.json`` directory (``sso keys export`` writes one).

        Imported active and next keys take over from the current ones of their algorithm,
        which are retired (still published for the grace period); keys already present are
        left as they are. Returns how many keys were added.
        """
        keys = read_directory(directory)
        if not keys:
            raise KeyStoreError(f"no keyset.json in {directory}")

        def work(connection: Connection) -> int:
            present = set(connection.execute(select(_TABLE.c.kid)).scalars())
            new = [key for key in keys if key.kid not in present]
            when = utcnow()
            for alg in {key.alg for key in new if key.state in (ACTIVE, NEXT)}:
                states = [key.state for key in new if key.alg == alg and key.state != RETIRED]
                connection.execute(update(_TABLE).where(_TABLE.c.alg == alg,
                                                        _TABLE.c.state.in_(states))
                                   .values(state=RETIRED, retired_at=when))
            for key in new:
                if key.state == RETIRED and key.retired_at is None:
                    key.retired_at = when.timestamp()
                self._insert(connection, key)
            self._fill(connection)
            return len(new)

        return self._change(work)

    def export_directory(self, directory: str | Path) -> Path:
        """Write every published key, decrypted, as a ``keyset.json`` directory."""
        keys = [self._decrypt(row) for row in self._live(self._rows())]
        return write_directory(directory, keys)

    def reencrypt(self) -> int:
        """Encrypt every private part with the first key-encryption secret; return the count."""

        def work(connection: Connection) -> int:
            rows = connection.execute(select(_TABLE.c.kid, _TABLE.c.private_key)).all()
            for row in rows:
                try:
                    token = self.box.rotate(row.private_key.encode("ascii")).decode("ascii")
                except InvalidToken as error:
                    raise KeyStoreError(f"no secret in SSO_KEY_ENCRYPTION_KEY opens signing "
                                        f"key {row.kid}") from error
                connection.execute(update(_TABLE).where(_TABLE.c.kid == row.kid)
                                   .values(private_key=token))
            return len(rows)

        return self._change(work)
