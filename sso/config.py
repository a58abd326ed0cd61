"""Settings from ``SSO_*`` environment variables, with defaults that work on a laptop.

Order of precedence (lowest first): :class:`DefaultConfig`, the instance folder's settings file
(:data:`SETTINGS_FILE`, ``SSO_X=value`` lines, which ``sso demo`` writes so that every ``sso``
command reaches the provider it runs), the environment (``SSO_X`` sets ``X``; values are
JSON-parsed, so ``SSO_SELF_REGISTRATION=true`` is a bool), then the mapping handed to
:func:`sso.create_app`. Nothing here reads the environment at import time, and nothing here
imports Flask: the ``sso`` command checks settings before (and without) building the app.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEV_SECRET_FILE = "dev-secret-key"
#: The development key-encryption key of the signing keys, in the instance folder.
DEV_KEK_FILE = "dev-key-encryption-key"
#: ``SSO_X=value`` lines in the instance folder, read before the environment.
SETTINGS_FILE = "settings.env"
#: The Unix socket of the embedded development Redis (``sso.embedded``) in the instance folder.
EMBEDDED_REDIS_SOCKET = "redis.sock"


class ConfigError(RuntimeError):
    """The configuration cannot run safely; the message says which variable to set."""


class DefaultConfig:
    #: "production" refuses unsafe settings; "development" (``make run``) relaxes a few.
    ENV = "production"
    TESTING = False

    ISSUER = "http://127.0.0.1:5000"
    SECRET_KEY: str | None = None
    #: SQLAlchemy URL. Required in production; development falls back to a SQLite file in
    #: the instance folder.
    DATABASE_URL: str | None = None
    #: Required in production; development falls back to the embedded Redis (``sso.embedded``),
    #: which the ``sso`` commands start when they need it (``REDIS_EMBEDDED`` says so).
    REDIS_URL: str | None = None
    #: Redis Sentinel instead of a URL: "host:port,host:port", the monitored master's name,
    #: the master's password and database, and the sentinels' own password (if they have one).
    REDIS_SENTINELS: str | list[str] | None = None
    REDIS_MASTER_NAME = "mymaster"
    REDIS_PASSWORD: str | None = None
    REDIS_DB = 0
    REDIS_SENTINEL_PASSWORD: str | None = None
    #: Every Redis key and channel starts with this, so tests and tenants can share a server.
    REDIS_PREFIX = "sso:"
    #: Where signing keys were kept before they moved into the database: a ``keyset.json``
    #: found here is imported into an empty key table. Unset: ``keys/`` in the working directory.
    KEYS_DIR: str | None = None
    #: Secrets encrypting the signing keys' private parts (comma-separated or a JSON list; the
    #: first encrypts, all decrypt), or a file holding them one a line (``..._FILE``).
    #: Required in production; development keeps a generated one in the instance folder.
    KEY_ENCRYPTION_KEY: str | list[str] | None = None
    KEY_ENCRYPTION_KEY_FILE: str | None = None
    #: How often (seconds) a node asks Redis whether another node changed the signing keys.
    KEYS_CHECK_INTERVAL = 1.0

    # Token lifetimes in seconds.
    AUTH_CODE_TTL = 60
    ACCESS_TOKEN_TTL = 600
    ID_TOKEN_TTL = 600
    #: Lifetime of ``offline_access`` refresh tokens, which outlive the SSO session.
    OFFLINE_REFRESH_TOKEN_TTL = 30 * 24 * 3600
    #: Refresh tokens that are not offline die with the SSO session, at the latest after this.
    REFRESH_TOKEN_TTL = 24 * 3600
    SESSION_TTL = 12 * 3600
    # Sessions, devices and single logout (docs/sessions.md).
    #: An SSO session ends after this many seconds without sign-in activity (0: never) ...
    SESSION_IDLE = 30 * 60
    #: ... and this many seconds after it began, whatever happens (0: only SESSION_TTL).
    SESSION_MAX = 12 * 3600
    #: A voluntary password change leaves ``offline_access`` grants alone (reset never does).
    KEEP_OFFLINE_ON_PASSWORD_CHANGE = False
    #: An ``offline_access`` grant ends this many days after the sign-in that began it, however
    #: often it is refreshed.
    OFFLINE_MAX_DAYS = 90
    #: How long a browser's device cookie lasts (a browser caps it at 400 days).
    DEVICE_COOKIE_DAYS = 400
    #: Seconds the logout page waits for front-channel logout iframes before going on.
    FRONTCHANNEL_WAIT = 3
    #: The flow (an authorization request waiting for sign-in) expires after this.
    FLOW_TTL = 30 * 60
    #: A retired signing key stays in the JWKS this long after it stopped signing.
    KEY_RETIREMENT_GRACE = 24 * 3600

    #: JWS algorithm of access tokens (RFC 9068). ES256 signs ten times faster than RS256 here;
    #: RS256 remains available per client and for ID tokens (OIDC's default).
    ACCESS_TOKEN_ALG = "ES256"
    ID_TOKEN_ALG = "RS256"

    # argon2id, OWASP's second recommended setting (19 MiB, t=2, p=1).
    ARGON2_MEMORY_KIB = 19 * 1024
    ARGON2_TIME_COST = 2
    ARGON2_PARALLELISM = 1

    # Brute-force protection: consecutive failures per account before a lock, and its length.
    LOCKOUT_THRESHOLD = 5
    LOCKOUT_SECONDS = 15 * 60

    # Account lifecycle (docs/accounts.md lists every one with its SSO_* variable).
    INVITE_TTL = 72 * 3600
    RESET_TTL = 30 * 60
    REGISTRATION_TTL = 24 * 3600
    SMS_CODE_TTL = 10 * 60
    SMS_CODE_ATTEMPTS = 5
    SELF_REGISTRATION = False
    REGISTRATION_APPROVAL = False
    PASSWORD_RESET_ENDS_SESSIONS = True
    PASSWORD_MIN_LENGTH = 10
    #: Character classes a password must mix: any of "letters", "digits", "symbols"; "" for none.
    PASSWORD_CLASSES = "letters,digits,symbols"
    PASSWORD_REFUSE_COMMON = True
    PASSWORD_HISTORY = 5
    #: Days after which a password must be changed; 0 never.
    PASSWORD_MAX_AGE_DAYS = 0
    #: Failures for an account (from anywhere, or from one address) after which its sign-in
    #: asks for the picture's characters; and failures from one address for any names (high:
    #: a whole office may sign in through one NAT address; docs/hardening.md).
    CAPTCHA_AFTER = 3
    CAPTCHA_AFTER_IP = 50
    #: Second factor: consecutive wrong codes before it locks (cleared only by a right code),
    #: and wrong codes allowed in 24 hours whatever succeeds in between.
    MFA_LOCKOUT_THRESHOLD = 5
    MFA_DAILY_FAILURES = 20
    #: Account forms a stranger can post (reset, registration, activation) answer no sooner
    #: than this after the request began, known name or not (sso/accounts/evenly.py).
    EVEN_ANSWER_SECONDS = 0.5
    RATE_LIMIT_ACCOUNT_IP = "20/900"
    RATE_LIMIT_MESSAGES_PER_USER = "3/900"
    #: Codes sent to a new mobile number from the profile page, per user.
    RATE_LIMIT_PHONE_CHANGE_USER = "3/900"
    #: Tencent Cloud SMS (``SSO_SMS_TRANSPORT=tencent``).
    TENCENT_SMS_ENDPOINT = "https://sms.tencentcloudapi.com"
    TENCENT_SMS_REGION = "ap-guangzhou"

    # Rate limits: "count/seconds".
    RATE_LIMIT_LOGIN_IP = "30/300"

    # Two-step verification (TOTP, see docs/mfa.md).
    #: Comma-separated secrets; the first encrypts TOTP seeds, all decrypt. Unset: derived
    #: from SECRET_KEY.
    MFA_ENCRYPTION_KEYS: str | list[str] | None = None
    MFA_REQUIRED_FOR_ADMINS = True
    #: How long "remember this device" skips the second factor (0 turns the option off).
    MFA_REMEMBER_DAYS = 30
    MFA_ISSUER_NAME = "Company SSO"
    #: Code attempts per user, and per address.
    RATE_LIMIT_MFA_USER = "10/300"
    RATE_LIMIT_MFA_IP = "60/300"
    #: QR login (scan to sign in): a code's lifetime, how recently the approving phone must
    #: have signed in, the SSE heartbeat and the long-poll wait, in seconds; codes per IP.
    #: A code's lifetime, 60-120 s (RFC 10027: short-lived); the desktop swaps in a fresh one.
    QR_CODE_TTL = 120
    #: Overrides QR_CODE_TTL without its bounds (benchmarks holding waiters for long); unset.
    QR_TTL: int | None = None
    #: The phone's second factors reach the desktop only if proved this recently (s).
    QR_FACTOR_FRESHNESS = 600
    #: The company's networks (CIDRs, comma-separated): a phone and a desktop both inside
    #: them count as near each other, like the same public address.
    QR_TRUSTED_NETWORKS = ""
    #: Approvals (and "This wasn't me") per user.
    RATE_LIMIT_QR_APPROVE_USER = "10/300"
    QR_PHONE_MAX_AGE = 8 * 3600
    QR_HEARTBEAT = 15
    QR_LONG_POLL = 25
    RATE_LIMIT_QR_CREATE_IP = "30/60"
    #: Seconds a waiting desktop keeps asking a Redis that stopped answering (a Sentinel
    #: failover) before its QR code is given up; docs/deploy.md sizes Sentinel to fit.
    QR_REDIS_GRACE = 6
    #: After "This wasn't me" on the phone, QR approvals of that user are refused this long.
    QR_BLOCK_AFTER_REPORT = 15 * 60

    #: Number of reverse proxies in front of the app whose X-Forwarded-* headers are trusted.
    TRUSTED_PROXIES = 0
    #: Where those proxies connect from (CIDRs): X-Forwarded-* from any other peer is dropped,
    #: so a port published directly cannot forge the client's address. Unset:
    #: SSO_FORWARDED_ALLOW_IPS, else loopback.
    TRUSTED_PROXY_NETWORKS: str | None = None

    # Operations (docs/operations.md): logs and Prometheus metrics.
    #: "json" (one object a line) or "text"; unset: json in production, text in development.
    LOG_FORMAT: str | None = None
    #: Unset: INFO in production (an access line per request), WARNING in development.
    LOG_LEVEL: str | None = None
    #: A file the access lines go to instead of stderr (in LOG_FORMAT, whatever LOG_LEVEL).
    ACCESS_LOG: str | None = None
    #: Seconds the server's access lines and audit events' lines (JSON) may wait to be
    #: written together, by a thread of each worker; 0: each at once (sso.logs.LineBatch).
    ACCESS_LOG_DELAY = 0.1
    #: A bearer token that may read /metrics from anywhere; unset: only METRICS_ALLOW may.
    METRICS_TOKEN: str | None = None
    #: Networks that may read /metrics without the token (comma-separated).
    METRICS_ALLOW = "127.0.0.1/32,::1/128"

    # App activation (sso/apps): how often the "waiting for approval" page reloads, and how
    # long the provider waits for an app's events endpoint before leaving the rest to retries.
    APPS_WAITING_REFRESH = 10
    #: Total deadline (seconds) of one delivery of an event, from connecting to the last byte.
    EVENTS_TIMEOUT = 5
    #: What a request waits for the first delivery of its events (never more than 2 s).
    EVENTS_INLINE_DEADLINE = 2
    # Calls out (sso/outbound.py, docs/hardening.md): hosts or networks (CIDR) that may be
    # private addresses; calls in flight per endpoint; failures that open an endpoint's
    # circuit, and for how long.
    OUTBOUND_ALLOW: list[str] | str = []
    OUTBOUND_CONCURRENCY = 4
    OUTBOUND_BREAKER_FAILURES = 3
    OUTBOUND_BREAKER_SECONDS = 30
    OUTBOX_CLAIM_SECONDS = 60
    #: The admin console asks for the second factor again after this many idle seconds;
    #: audit events older than AUDIT_RETENTION_DAYS go with `sso audit purge` (docs/admin.md).
    ADMIN_IDLE = 900
    AUDIT_RETENTION_DAYS = 180

    # The company's look (sso/branding.py, docs/branding.md). Name and footer are text, or a
    # JSON object of language -> text; the logo is a PNG, JPEG, GIF, WebP or SVG file; the
    # colour must keep 4.5:1 contrast with white, or start-up refuses it.
    BRAND_NAME: str | dict[str, str] | None = None
    BRAND_LOGO: str | None = None
    BRAND_PRIMARY_COLOR = "#1f5fbf"
    BRAND_FOOTER: str | dict[str, str] | None = None

    LANGUAGES = ["zh-CN", "en"]
    DEFAULT_LANGUAGE = "en"

    # Waits on the database (sso/database.py, docs/hardening.md), in seconds: connecting,
    # a connection from the pool, one statement (0: no limit, e.g. for a long migration),
    # a lock, and SQLite's wait for another writer.
    DB_CONNECT_TIMEOUT = 3
    DB_POOL_TIMEOUT = 5
    DB_STATEMENT_TIMEOUT = 10
    #: PostgreSQL: a pooled connection idle this long is checked before use (0: always).
    DB_PING_IDLE = 1
    #: PostgreSQL: connections each worker keeps open, and how many more it may open for a
    #: burst (each closed again on its return). Kept, not reopened: one worker serves many
    #: requests at once (a thread each), and a burst above the kept ones used to open and
    #: close a connection per request.
    DB_POOL_SIZE = 15
    DB_MAX_OVERFLOW = 0
    #: PostgreSQL: connections each worker keeps, in autocommit, for the reads that join no
    #: transaction (the revocation check of introspection and UserInfo) and a refresh's one
    #: statement (sso.oidc.tokens.rotate_refresh_token).
    DB_READ_POOL_SIZE = 5
    #: Connections of the pool each worker keeps for the token and authorization requests:
    #: the grants' writes then need no ORM session (sso.database.Writes); with all in use a
    #: request takes one from the pool as before. 0: none kept.
    DB_HELD_WRITES = 4
    DB_LOCK_TIMEOUT = 5
    DB_BUSY_TIMEOUT = 5
    #: The longest a token, introspection, UserInfo or authorization request waits for its
    #: turn before it goes on without one (sso.database.Turns); 0: no turns.
    TURN_WAIT = 0.25
    #: PostgreSQL: how many of those requests a worker runs at once; the others wait their
    #: turn (SQLite: one at a time). 0: no turns on PostgreSQL.
    POSTGRES_TURNS = 3
    #: A refresh token presented again within this many seconds of its use gets the same
    #: answer (a client retrying after a lost response), not the revocation of its grant.
    REFRESH_REUSE_GRACE = 10
    #: Seconds a worker may keep an access token's revocation and its user's status for
    #: introspection (sso.oidc.tokenstatus); 0: read on every introspection. A revocation
    #: or a disabled user then reaches the other workers' answers within a second.
    INTROSPECTION_CACHE = 0

    # Maximum sizes of request parameters; larger ones are refused with invalid_request.
    MAX_PARAM_LENGTH = 2048
    MAX_REQUEST_BYTES = 64 * 1024


def load(app: Any, overrides: dict[str, Any] | None) -> None:
    """Fill ``app.config`` in the documented order, then derive and validate."""
    app.config.update(resolve(Path(app.instance_path), overrides))


def resolve(instance: Path, overrides: Mapping[str, Any] | None = None,
            environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings of the provider whose instance folder is ``instance``, derived and
    validated, without building an app (the ``sso`` command checks them before it serves)."""
    config = {name: getattr(DefaultConfig, name) for name in dir(DefaultConfig)
              if name.isupper()}
    config.update(_prefixed(read_settings_file(instance)))
    config.update(_prefixed(os.environ if environ is None else environ))
    config.update(overrides or {})
    _derive(config, instance)
    validate(config)
    config["KEY_ENCRYPTION_KEYS"] = _key_encryption_keys(
        config, instance, config["ENV"] == "development" or bool(config["TESTING"]))
    return config


def _prefixed(variables: Mapping[str, str]) -> dict[str, Any]:
    """``SSO_X`` variables as ``X`` settings, JSON-parsed where they parse (as Flask's
    ``from_prefixed_env`` does)."""
    settings: dict[str, Any] = {}
    for name in sorted(variables):
        if name.startswith("SSO_") and len(name) > 4:
            try:
                settings[name[4:]] = json.loads(variables[name])
            except ValueError:
                settings[name[4:]] = variables[name]
    return settings


def instance_path(overrides: Mapping[str, Any] | None = None) -> Path:
    """The instance folder: ``INSTANCE_PATH`` in ``overrides``, else ``SSO_INSTANCE_PATH``,
    else :func:`default_instance_path`."""
    chosen = (overrides or {}).get("INSTANCE_PATH") or os.environ.get("SSO_INSTANCE_PATH")
    return Path(chosen).absolute() if chosen else default_instance_path()


def default_instance_path() -> Path:
    """``instance/`` beside the package in a checkout, ``<prefix>/var/sso-instance`` when it
    is installed: Flask's own rule (``Flask.auto_find_instance_path``), without importing it."""
    package_parent = Path(__file__).absolute().parent.parent
    prefix = Path(sys.prefix).absolute()
    if package_parent.is_relative_to(prefix):  # installed into this Python
        return prefix / "var" / "sso-instance"
    if package_parent.name.lower() == "site-packages":  # installed into another prefix
        lib = package_parent.parent
        if lib.name.lower() == "lib":  # prefix/lib/site-packages
            root = lib.parent
        elif lib.parent.name.lower() == "lib":  # prefix/lib/pythonX.Y/site-packages
            root = lib.parent.parent
        else:  # prefix/site-packages
            root = lib
        return root / "var" / "sso-instance"
    return package_parent / "instance"


def read_settings_file(instance: Path) -> dict[str, str]:
    """The ``SSO_X=value`` lines of the instance's settings file (none if there is no file).

    One setting per line, the value as in the environment (no quotes, no expansion); blank
    lines and lines starting with ``#`` are skipped.
    """
    path = instance / SETTINGS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        if not equals or not name.strip().startswith("SSO_"):
            raise ConfigError(f"{path}, line {number}: expected SSO_NAME=value")
        values[name.strip()] = value.strip()
    return values


def write_settings_file(instance: Path, values: Mapping[str, str], header: str) -> Path:
    """Replace the instance's settings file with ``values`` (readable by its owner only)."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / SETTINGS_FILE
    partial = path.with_name(path.name + ".partial")
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += [f"{name}={value}" for name, value in sorted(values.items())]
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.chmod(0o600)
    partial.replace(path)
    return path


def _derive(config: dict[str, Any], instance: Path) -> None:
    relaxed = config["ENV"] == "development" or config["TESTING"]
    missing = [f"SSO_{name}" for name in ("DATABASE_URL", "REDIS_URL") if not config.get(name)
               and not (name == "REDIS_URL" and config.get("REDIS_SENTINELS"))]
    if missing and not relaxed:
        raise ConfigError(
            f"set {' and '.join(missing)}: production has no built-in database or Redis "
            "(SSO_ENV=development uses SQLite and an embedded Redis)")
    config["ISSUER"] = str(config["ISSUER"]).rstrip("/")
    config["QR_TTL"] = int(config.get("QR_TTL") or config["QR_CODE_TTL"])
    config["TRUSTED_PROXY_NETWORKS"] = (config.get("TRUSTED_PROXY_NETWORKS")
                                        or config.get("FORWARDED_ALLOW_IPS")
                                        or "127.0.0.0/8,::1/128")
    if not config.get("DATABASE_URL"):
        instance.mkdir(parents=True, exist_ok=True)
        config["DATABASE_URL"] = f"sqlite:///{instance / 'sso.sqlite3'}"
    config["REDIS_EMBEDDED"] = not config.get("REDIS_URL") and not config.get("REDIS_SENTINELS")
    if config["REDIS_EMBEDDED"]:
        config["REDIS_URL"] = f"unix://{instance / EMBEDDED_REDIS_SOCKET}"
    config["SQLALCHEMY_DATABASE_URI"] = _normalise_database_url(config["DATABASE_URL"])
    config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    for name, value in engine_options(config).items():
        config["SQLALCHEMY_ENGINE_OPTIONS"].setdefault(name, value)
    config["KEYS_DIR"] = str(Path(config.get("KEYS_DIR") or "keys").absolute())
    if not config.get("SECRET_KEY") and relaxed:
        config["SECRET_KEY"] = _development_secret(instance)
    secure = config["ISSUER"].startswith("https://")
    config["SESSION_COOKIE_SECURE"] = secure
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    # Every cookie of the provider is __Host- on https: only this host, path /, Secure.
    config["SESSION_COOKIE_NAME"] = "__Host-sso_flow" if secure else "sso_flow"
    config["MAX_CONTENT_LENGTH"] = config["MAX_REQUEST_BYTES"]
    config["PREFERRED_URL_SCHEME"] = "https" if secure else "http"
    config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False


def _normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever spelling the operator used."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _key_encryption_keys(config: dict[str, Any], instance: Path, relaxed: bool) -> list[str]:
    """The key-encryption secrets, from ``KEY_ENCRYPTION_KEY`` or the file it names in
    ``KEY_ENCRYPTION_KEY_FILE``; generated in the instance folder outside production."""
    raw = config.get("KEY_ENCRYPTION_KEY")
    source = "SSO_KEY_ENCRYPTION_KEY"
    if not raw and config.get("KEY_ENCRYPTION_KEY_FILE"):
        source = "SSO_KEY_ENCRYPTION_KEY_FILE"
        try:
            raw = Path(str(config["KEY_ENCRYPTION_KEY_FILE"])).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"SSO_KEY_ENCRYPTION_KEY_FILE cannot be read: {error}") from None
        raw = raw.replace("\n", ",")
    if not raw:
        if not relaxed:
            raise ConfigError(
                "set SSO_KEY_ENCRYPTION_KEY (or SSO_KEY_ENCRYPTION_KEY_FILE) to a long random "
                "value (e.g. `openssl rand -hex 32`): it encrypts the signing keys")
        return [_development_secret(instance, DEV_KEK_FILE)]
    items = raw if isinstance(raw, list) else str(raw).split(",")
    keys = [str(item).strip() for item in items if str(item).strip()]
    if not keys or any(len(key) < 32 for key in keys):
        raise ConfigError(f"{source} must hold secrets of at least 32 characters each")
    return keys


def _development_secret(instance: Path, name: str = DEV_SECRET_FILE) -> str:
    """Keep one random secret per instance folder so development sessions survive restarts."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def validate(config: Any) -> None:
    """Refuse settings that would run unsafely, naming the variable to fix."""
    issuer = urlsplit(config["ISSUER"])
    if issuer.scheme not in ("http", "https") or not issuer.hostname:
        raise ConfigError("SSO_ISSUER must be an absolute http(s) URL")
    if issuer.query or issuer.fragment:
        raise ConfigError("SSO_ISSUER must not have a query or fragment (OpenID Discovery §3)")
    loopback = issuer.hostname in ("127.0.0.1", "localhost", "::1")
    relaxed = config["ENV"] == "development" or config["TESTING"]
    if issuer.scheme == "http" and not loopback and not relaxed:
        raise ConfigError("SSO_ISSUER must use https outside development and loopback addresses")
    secret = config.get("SECRET_KEY")
    if not secret:
        raise ConfigError("set SSO_SECRET_KEY to a long random value (e.g. `openssl rand -hex 32`)")
    if len(str(secret)) < 32:
        raise ConfigError("SSO_SECRET_KEY must be at least 32 characters long")
    for name in ("ACCESS_TOKEN_ALG", "ID_TOKEN_ALG"):
        if config[name] not in ("RS256", "ES256"):
            raise ConfigError(f"SSO_{name} must be RS256 or ES256")
    delay = config.get("ACCESS_LOG_DELAY")
    if (isinstance(delay, bool) or not isinstance(delay, int | float)
            or not 0 <= delay <= MAX_ACCESS_LOG_DELAY):
        raise ConfigError(f"SSO_ACCESS_LOG_DELAY must be a number of seconds from 0 to "
                          f"{MAX_ACCESS_LOG_DELAY}")
    cache = config.get("INTROSPECTION_CACHE")
    if (isinstance(cache, bool) or not isinstance(cache, int | float)
            or not 0 <= cache <= MAX_INTROSPECTION_CACHE):
        raise ConfigError(f"SSO_INTROSPECTION_CACHE must be a number of seconds from 0 to "
                          f"{MAX_INTROSPECTION_CACHE} (0: no cache)")
    if not 60 <= int(config["QR_CODE_TTL"]) <= 120:
        raise ConfigError("SSO_QR_CODE_TTL must be 60-120 seconds (RFC 10027: short-lived codes)")
    try:
        parse_sentinels(config.get("REDIS_SENTINELS"))
    except ValueError as error:
        raise ConfigError(f"SSO_REDIS_SENTINELS: {error} (expected host:port,host:port)") from None
    if not str(config["REDIS_PREFIX"]).endswith(":"):
        raise ConfigError("SSO_REDIS_PREFIX must end with ':'")


#: The longest an access line may wait: what a worker that dies unstopped can lose.
MAX_ACCESS_LOG_DELAY = 5
#: The longest a worker may keep a token's status for introspection: what a revocation
#: announced while Redis did not answer may take to reach the other workers.
MAX_INTROSPECTION_CACHE = 60


def parse_sentinels(value: Any) -> list[tuple[str, int]]:
    """``"host:port,host:port"`` (or a list of such strings) as (host, port) pairs."""
    if not value:
        return []
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    pairs = []
    for item in items:
        text = str(item).strip()
        host, colon, port = text.rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"{text!r} is not host:port")
        pairs.append((host.strip("[]"), int(port)))
    return pairs


def environment_flag(name: str) -> bool:
    """Read a boolean ``SSO_*`` flag outside an app (the CLI before the app exists)."""
    return os.environ.get(name, "").lower() in ("1", "true", "yes", "on")


def engine_options(config: dict[str, Any]) -> dict[str, Any]:
    """Engine options for the database URL in ``config`` (``_derive`` merges them); kept here,
    free of SQLAlchemy, so that commands which never build the app start quickly.

    The pools hand out the connection handed back last (LIFO), not the one idle longest. A
    connection that another one wrote after has lost its cache: on SQLite its page cache,
    reread on its next statement, which made each statement of a refresh about half again
    as costly when a worker's requests went round its pooled connections in turn; on
    PostgreSQL, the backend's catalog and plan caches and, after ``SSO_DB_PING_IDLE``, a
    ping. Connections a quiet worker does not need stay at the bottom, idle."""
    url = str(config["SQLALCHEMY_DATABASE_URI"])
    if url.startswith("postgresql"):
        statement_ms = int(float(config.get("DB_STATEMENT_TIMEOUT", 10)) * 1000)
        options = f"-c statement_timeout={statement_ms}" if statement_ms else ""
        lock_ms = int(float(config.get("DB_LOCK_TIMEOUT", 5)) * 1000)
        if lock_ms:
            options += f" -c lock_timeout={lock_ms}"
        return {
            "pool_pre_ping": False,  # the watched ping below replaces it
            "pool_use_lifo": True,
            "pool_timeout": float(config.get("DB_POOL_TIMEOUT", 5)),
            "pool_size": int(config.get("DB_POOL_SIZE", 15)),
            "max_overflow": int(config.get("DB_MAX_OVERFLOW", 0)),
            "connect_args": {"connect_timeout": max(1, int(config.get("DB_CONNECT_TIMEOUT", 3))),
                             "options": options.strip()},
        }
    if url.startswith("sqlite"):
        return {"pool_use_lifo": True,
                "connect_args": {"timeout": float(config.get("DB_BUSY_TIMEOUT", 5))}}
    return {}
