"""QR sessions in Redis, the state of record (DESIGN.md §4).

A QR session is one Redis hash, ``{prefix}qr:s:{id}``, that lives ``QR_TTL`` seconds::

    pending ──scan──▶ scanned ──approve──▶ approved ──complete──▶ consumed
                         └──deny / wrong number──▶ denied      (expired: the key is gone)

Every transition is one Lua script, so it is atomic: of two phones or two tabs racing, exactly
one wins, and the script publishes the new state on ``{prefix}qr:ev:{id}`` in the same step.
The desktop proves itself with a secret of which only the SHA-256 is stored; the QR code holds
only the id, so whoever photographs it cannot complete the sign-in.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ..extensions import RedisStore
from ..security import hash_token, same

PENDING, SCANNED, APPROVED, CONSUMED, DENIED, EXPIRED = (
    "pending", "scanned", "approved", "consumed", "denied", "expired",
)
#: States after which nothing more can happen.
FINAL_STATES = frozenset({CONSUMED, DENIED, EXPIRED})
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")

# Outcomes of a transition besides "ok" and the name of the state that blocked it.
MISSING = "missing"
OTHER_USER = "other_user"
WRONG_SECRET = "wrong_secret"
WRONG_NUMBER = "wrong_number"
OK = "ok"
#: The user reported a sign-in that was not theirs: their approvals are paused.
BLOCKED = "blocked"
#: The app refuses approvals from a phone on another network than the desktop's.
FAR_REFUSED = "far_refused"


class Unavailable(Exception):
    """Redis does not answer: scan-to-sign-in is off until it does."""


@dataclass(frozen=True)
class QRSession:
    id: str
    state: str
    created_at: float
    expires_at: float
    client_id: str
    client_name: str
    desktop_ip: str
    desktop_ua: str
    #: ``acr_values`` of the desktop's authorization request, for the phone's MFA check.
    acr_values: str = ""
    number: int | None = None
    choices: tuple[int, ...] = ()
    user_id: int | None = None
    phone_ip: str = ""
    phone_ua: str = ""
    #: The second-factor ``amr`` values of the approving phone's session.
    factors: tuple[str, ...] = ()
    #: The phone scanned from another network than the desktop's (RFC 10027 proximity).
    far: bool = False
    desktop_network: str = ""
    phone_network: str = ""

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class Created:
    session: QRSession
    #: For the desktop's HttpOnly cookie; only its hash is stored.
    secret: str


@dataclass(frozen=True)
class Outcome:
    result: str
    session: QRSession | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.result == OK


_STATE_OR_MISSING = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
"""

_SCAN = _STATE_OR_MISSING + """
if state == 'pending' then
  redis.call('HSET', KEYS[1], 'state', 'scanned', 'user_id', ARGV[1], 'phone_ip', ARGV[2],
             'phone_ua', ARGV[3], 'scanned_at', ARGV[4], 'desktop_net', ARGV[6],
             'phone_net', ARGV[7])
  if ARGV[5] == '1' then
    -- The phone is on another network: number matching becomes mandatory for this code.
    redis.call('HSET', KEYS[1], 'far', '1')
    if not redis.call('HGET', KEYS[1], 'number') then
      redis.call('HSET', KEYS[1], 'number', redis.call('HGET', KEYS[1], 'spare_number'),
                 'choices', redis.call('HGET', KEYS[1], 'spare_choices'))
    end
  end
  redis.call('PUBLISH', KEYS[2], 'scanned')
  return {'ok'}
end
if state == 'scanned' then
  if redis.call('HGET', KEYS[1], 'user_id') == ARGV[1] then return {'ok'} end
  return {'other_user'}
end
return {state}
"""

_APPROVE = _STATE_OR_MISSING + """
if state ~= 'scanned' then return {state} end
if redis.call('HGET', KEYS[1], 'user_id') ~= ARGV[1] then return {'other_user'} end
local number = redis.call('HGET', KEYS[1], 'number')
if number and number ~= ARGV[2] then
  redis.call('HSET', KEYS[1], 'state', 'denied', 'denied_at', ARGV[4])
  redis.call('PUBLISH', KEYS[2], 'denied')
  return {'wrong_number'}
end
redis.call('HSET', KEYS[1], 'state', 'approved', 'factors', ARGV[3], 'approved_at', ARGV[4],
           'phone_ip', ARGV[5], 'phone_ua', ARGV[6])
redis.call('PUBLISH', KEYS[2], 'approved')
return {'ok'}
"""

_DENY = _STATE_OR_MISSING + """
if state ~= 'scanned' then return {state} end
if redis.call('HGET', KEYS[1], 'user_id') ~= ARGV[1] then return {'other_user'} end
redis.call('HSET', KEYS[1], 'state', 'denied', 'denied_at', ARGV[2])
redis.call('PUBLISH', KEYS[2], 'denied')
return {'ok'}
"""

# The secret is checked before the state, so a caller without it learns nothing.
_CONSUME = _STATE_OR_MISSING + """
if redis.call('HGET', KEYS[1], 'secret_hash') ~= ARGV[1] then return {'wrong_secret'} end
if state ~= 'approved' then return {state} end
redis.call('HSET', KEYS[1], 'state', 'consumed', 'consumed_at', ARGV[2])
redis.call('PUBLISH', KEYS[2], 'consumed')
return {'ok'}
"""


# The desktop says the approver is not who sits in front of it (a session swap): only with
# the desktop's secret, only while approved and not yet consumed.
_REJECT = _STATE_OR_MISSING + """
if redis.call('HGET', KEYS[1], 'secret_hash') ~= ARGV[1] then return {'wrong_secret'} end
if state ~= 'approved' then return {state} end
redis.call('HSET', KEYS[1], 'state', 'denied', 'denied_at', ARGV[2], 'rejected', '1')
redis.call('PUBLISH', KEYS[2], 'denied')
return {'ok'}
"""


class QRStore:
    """The QR sessions of one Redis (prefix), with their transitions."""

    def __init__(self, redis_store: RedisStore, ttl: int, max_connections: int = 64) -> None:
        self.redis = redis_store
        self.ttl = ttl
        self.max_connections = max_connections
        self._client: redis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    @property
    def client(self) -> redis.Redis:
        """A bounded pool of its own: thousands of waiting desktops in one worker share
        a few connections (a burst waits for a free one instead of opening hundreds), and a
        dropped connection is retried before the feature is declared unavailable."""
        if self._client is None:
            if not self.redis.configured:
                raise Unavailable("Redis is not configured")
            self._client = self.redis.make_client(
                max_connections=self.max_connections, blocking=True, socket_timeout=2.0,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
                retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            )
        return self._client

    def key(self, qr_id: str) -> str:
        return self.redis.key("qr", "s", qr_id)

    def channel(self, qr_id: str) -> str:
        return self.redis.key("qr", "ev", qr_id)

    def channel_pattern(self) -> str:
        return self.redis.key("qr", "ev", "*")

    def id_of_channel(self, channel: bytes | str) -> str:
        name = channel.decode() if isinstance(channel, bytes) else channel
        return name.rsplit(":", 1)[-1]

    def _script(self, name: str, source: str) -> Any:
        if name not in self._scripts:
            self._scripts[name] = self.client.register_script(source)
        return self._scripts[name]

    def _run(self, name: str, source: str, qr_id: str, *args: Any) -> str:
        try:
            reply = self._script(name, source)(keys=[self.key(qr_id), self.channel(qr_id)],
                                               args=[str(a) for a in args])
        except redis.RedisError as exc:
            raise Unavailable(str(exc)) from exc
        return reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def create(self, *, client_id: str, client_name: str, desktop_ip: str, desktop_ua: str,
               number_matching: bool, acr_values: str = "", now: float | None = None
               ) -> Created:
        now = time.time() if now is None else now
        qr_id = secrets.token_urlsafe(16)
        secret = secrets.token_urlsafe(32)
        fields: dict[str, str] = {
            "state": PENDING, "created_at": repr(now), "client_id": client_id,
            "client_name": client_name[:128], "desktop_ip": desktop_ip[:45],
            "desktop_ua": desktop_ua[:255], "secret_hash": hash_token(secret),
            "acr_values": acr_values[:256],
        }
        number, *decoys = secrets.SystemRandom().sample(range(10, 100), 3)
        choices = [number, *decoys]
        secrets.SystemRandom().shuffle(choices)
        # Without number matching the number is kept aside: a phone on another network
        # makes it mandatory when it scans (see _SCAN).
        prefix = "" if number_matching else "spare_"
        fields[prefix + "number"] = str(number)
        fields[prefix + "choices"] = ",".join(map(str, choices))
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(self.key(qr_id), mapping=fields)
            pipe.expire(self.key(qr_id), self.ttl)
            pipe.execute()
        except redis.RedisError as exc:
            raise Unavailable(str(exc)) from exc
        return Created(self._parse(qr_id, {k.encode(): v.encode() for k, v in fields.items()},
                                   self.ttl), secret)

    def get(self, qr_id: str) -> QRSession | None:
        """The session, or None when the id is malformed, unknown or expired."""
        if not ID_PATTERN.match(qr_id or ""):
            return None
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(self.key(qr_id))
            pipe.pttl(self.key(qr_id))
            raw, pttl = pipe.execute()
        except redis.RedisError as exc:
            raise Unavailable(str(exc)) from exc
        if not raw:
            return None
        return self._parse(qr_id, raw, max(int(pttl), 0) / 1000)

    def state(self, qr_id: str) -> str:
        """Only the state (``expired`` once the key is gone): what waiting desktops read."""
        try:
            raw = self.client.hget(self.key(qr_id), "state")
        except redis.RedisError as exc:
            raise Unavailable(str(exc)) from exc
        return raw.decode() if raw else EXPIRED

    def owns(self, qr_id: str, secret: str | None) -> bool:
        """Whether ``secret`` is the desktop secret of this QR session."""
        if not secret or len(secret) > 128 or not ID_PATTERN.match(qr_id or ""):
            return False
        try:
            stored = self.client.hget(self.key(qr_id), "secret_hash")
        except redis.RedisError as exc:
            raise Unavailable(str(exc)) from exc
        return stored is not None and same(stored.decode(), hash_token(secret))

    def scan(self, qr_id: str, user_id: int, phone_ip: str, phone_ua: str,
             now: float | None = None, *, far: bool = False, desktop_net: str = "",
             phone_net: str = "") -> Outcome:
        return self._transition("scan", _SCAN, qr_id, user_id, phone_ip[:45], phone_ua[:255],
                                repr(time.time() if now is None else now), "1" if far else "",
                                desktop_net[:64], phone_net[:64])

    def approve(self, qr_id: str, user_id: int, number: int | None, factors: list[str],
                phone_ip: str, phone_ua: str, now: float | None = None) -> Outcome:
        return self._transition(
            "approve", _APPROVE, qr_id, user_id, "" if number is None else number,
            ",".join(sorted(factors)), repr(time.time() if now is None else now),
            phone_ip[:45], phone_ua[:255],
        )

    def deny(self, qr_id: str, user_id: int, now: float | None = None) -> Outcome:
        return self._transition("deny", _DENY, qr_id, user_id,
                                repr(time.time() if now is None else now))

    def consume(self, qr_id: str, secret: str, now: float | None = None) -> Outcome:
        if not secret or len(secret) > 128:
            return self._outcome(WRONG_SECRET, qr_id) if self.get(qr_id) else Outcome(MISSING)
        return self._transition("consume", _CONSUME, qr_id, hash_token(secret),
                                repr(time.time() if now is None else now))

    def block_key(self, user_id: int) -> str:
        return self.redis.key("qr", "block", str(user_id))

    def block(self, user_id: int, seconds: int) -> None:
        """Pause QR approvals of ``user_id`` for ``seconds`` (after "This wasn't me")."""
        if seconds <= 0:
            return
        try:
            self.client.set(self.block_key(user_id), "1", ex=int(seconds))
        except redis.RedisError as exc:
            raise Unavailable(str(exc)) from exc

    def blocked_for(self, user_id: int) -> int:
        """Seconds the user's QR approvals stay paused (0: not paused)."""
        try:
            return max(int(self.client.ttl(self.block_key(user_id))), 0)
        except redis.RedisError as exc:
            raise Unavailable(str(exc)) from exc

    def reject(self, qr_id: str, secret: str, now: float | None = None) -> Outcome:
        if not secret or len(secret) > 128:
            return self._outcome(WRONG_SECRET, qr_id) if self.get(qr_id) else Outcome(MISSING)
        return self._transition("reject", _REJECT, qr_id, hash_token(secret),
                                repr(time.time() if now is None else now))

    def _transition(self, name: str, source: str, qr_id: str, *args: Any) -> Outcome:
        if not ID_PATTERN.match(qr_id or ""):
            return Outcome(MISSING)
        return self._outcome(self._run(name, source, qr_id, *args), qr_id)

    def _outcome(self, result: str, qr_id: str) -> Outcome:
        return Outcome(result, self.get(qr_id) if result != MISSING else None)

    def _parse(self, qr_id: str, raw: dict[bytes, bytes], remaining: float) -> QRSession:
        values = {k.decode(): v.decode() for k, v in raw.items()}
        created = float(values.get("created_at", "0"))
        return QRSession(
            id=qr_id,
            state=values.get("state", EXPIRED),
            created_at=created,
            expires_at=time.time() + remaining,
            client_id=values.get("client_id", ""),
            client_name=values.get("client_name", ""),
            desktop_ip=values.get("desktop_ip", ""),
            desktop_ua=values.get("desktop_ua", ""),
            acr_values=values.get("acr_values", ""),
            number=int(values["number"]) if values.get("number") else None,
            choices=tuple(int(c) for c in values.get("choices", "").split(",") if c),
            user_id=int(values["user_id"]) if values.get("user_id") else None,
            phone_ip=values.get("phone_ip", ""),
            phone_ua=values.get("phone_ua", ""),
            factors=tuple(f for f in values.get("factors", "").split(",") if f),
            far=values.get("far") == "1",
            desktop_network=values.get("desktop_net", ""),
            phone_network=values.get("phone_net", ""),
        )


def parse_json_number(body: Any) -> int | None:
    """The ``number`` a phone picked, from a JSON body or a form value; None if absent."""
    value = body.get("number") if isinstance(body, dict) else body
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    # Only the digits the page's buttons send: int() would also take "１２", "1_2" and " 12",
    # so an odd spelling of the right number went through one time in ninety.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9:
        return int(value)
    return -1

