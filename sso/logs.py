"""Logs: one JSON object a line in production (``SSO_LOG_FORMAT=json``), plain text in
development, and a request id on every line written while a request is served.

The request id is the incoming ``X-Request-Id`` when it looks like one (1 to 64 letters, digits
and ``-_.:``; what a load balancer or the relying app sent), else a fresh random one. It is
echoed in the response's ``X-Request-Id`` header, written on each log line and on each audit
row (:mod:`sso.audit` reads :func:`current_request_id`), so one id ties a user's complaint,
the proxy's log, the provider's log and the audit trail together.
"""

from __future__ import annotations

import atexit
import contextvars
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
from collections import deque
from json.encoder import encode_basestring
from typing import Any

from flask import Flask, Response, g, request

HEADER = "X-Request-Id"
_SANE = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("sso_request_id",
                                                                         default=None)
#: Paths polled by machines: no access-log line for them.
QUIET_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_id"}

access_log = logging.getLogger("sso.access")
_ACCESS_LOGGER = encode_basestring(access_log.name)


def current_request_id() -> str | None:
    """The id of the request being served (None outside a request)."""
    return _request_id.get()


def request_id_from(header: str | None) -> str:
    if header and _SANE.fullmatch(header):
        return header
    return secrets.token_hex(16)


class RequestIdFilter(logging.Filter):
    """Puts ``request_id`` on every record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id", ...extra fields}``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {name: value if isinstance(value, str | int | float | bool | None) else str(value)
                  for name, value in vars(record).items()
                  if name not in _STANDARD and not name.startswith("_")}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return _json_line(record.created, record.levelname.lower(), record.name,
                         record.getMessage(),
                         getattr(record, "request_id", None) or _request_id.get(), fields)


def _json_line(created: float, level: str, logger: str, message: str, request_id: str | None,
              fields: dict[str, Any]) -> str:
    """One log line in JSON, as :class:`JsonFormatter` writes it."""
    return json.dumps({
        "time": _utc_time(created), "level": level, "logger": logger, "message": message,
        "request_id": request_id, **fields,
    }, ensure_ascii=False)


#: The last second :func:`_utc_time` wrote, and its text up to the seconds.
_last_second: tuple[int, str] = (-1, "")


def _utc_time(created: float) -> str:
    """``created`` (a Unix time) in ISO 8601 to the millisecond, in UTC:
    ``2026-12-05T01:02:03.456Z``. The text up to the seconds is made once a second."""
    global _last_second  # noqa: PLW0603 - a tuple, replaced whole: safe across threads
    second = int(created)
    cached = _last_second
    if cached[0] != second:
        cached = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S",
                                                       time.gmtime(second)))
    return f"{cached[1]}.{int((created - second) * 1000):03d}Z"


def _access_line(created: float, method: str, path: str, status: int, duration_ms: float,
                 remote_addr: str | None, request_id: str) -> str:
    """The access line :class:`JsonFormatter` would write for :func:`access`'s record, byte
    for byte (``tests/test_operations.py`` compares them), built without a dict and
    ``json.dumps``' encoder: each string is escaped by the function ``json.dumps`` itself
    uses for it (``ensure_ascii=False``), the numbers written as ``json.dumps`` writes them."""
    text = encode_basestring
    return (f'{{"time": "{_utc_time(created)}", "level": "info", "logger": {_ACCESS_LOGGER}, '
            f'"message": {text(f"{method} {path} {status}")}, "request_id": {text(request_id)}, '
            f'"method": {text(method)}, "path": {text(path)}, "status": {int.__repr__(status)}, '
            f'"duration_ms": {float.__repr__(duration_ms)}, "remote_addr": '
            f'{"null" if remote_addr is None else text(remote_addr)}}}')


def _info_line(created: float, logger: str, message: str, request_id: str) -> str:
    """The line :class:`JsonFormatter` writes for an INFO record with no fields of its own,
    byte for byte, built as :func:`_access_line` is."""
    text = encode_basestring
    return (f'{{"time": "{_utc_time(created)}", "level": "info", "logger": {text(logger)}, '
            f'"message": {text(message)}, "request_id": {text(request_id)}}}')


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure_for(app: Flask) -> logging.Handler:
    """The server's logging (:mod:`sso.wsgi`): the app's format and level. The ``sso`` admin
    commands keep Python's default (warnings and errors, as text), and tests pytest's."""
    level = app.config.get("LOG_LEVEL") or (
        "WARNING" if app.config["ENV"] == "development" else "INFO")
    handler = configure(app.config["LOG_FORMAT"], str(level).upper())
    if app.config.get("ACCESS_LOG"):
        log_access_to(app.config["ACCESS_LOG"], app.config["LOG_FORMAT"])
    batch_lines(float(app.config.get("ACCESS_LOG_DELAY") or 0))
    return handler


def batch_lines(delay: float) -> None:
    """Queue the lines written directly (access lines, audit events' lines) for up to
    ``delay`` seconds, to be written together (:class:`LineBatch`); 0: each at once."""
    global _batch  # noqa: PLW0603 - the process's one logging configuration
    stop_batching()
    _batch = LineBatch(delay) if delay > 0 else None


def log_access_to(path: str, log_format: str) -> None:
    """Write the access lines to the file ``path`` only (SSO_ACCESS_LOG)."""
    if any(getattr(handler, "_sso", False) for handler in access_log.handlers):
        return
    access_log.addHandler(_handler(logging.FileHandler(path, encoding="utf-8"), log_format))
    access_log.setLevel(logging.INFO)
    access_log.propagate = False


def _handler(handler: logging.Handler, log_format: str) -> logging.Handler:
    """``handler`` writing records in ``log_format``, each with its request id."""
    handler._sso = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else
                         logging.Formatter(TEXT_FORMAT))
    return handler


def configure(log_format: str, level: str = "INFO") -> logging.Handler:
    """Send every log record to stderr in ``log_format`` (once per process)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "_sso", False):
            return handler
    handler = _handler(logging.StreamHandler(sys.stderr), log_format)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def _begin() -> None:
    request_id = request_id_from(request.headers.get(HEADER))
    g.request_id = request_id
    g.request_id_token = _request_id.set(request_id)
    g.request_started = time.perf_counter()


def access(method: str, path: str, status: int, started: float,
           remote_addr: str | None) -> None:
    """The access-log line of one request (none for :data:`QUIET_PATHS`).

    Where every handler the line would reach is one of ours writing JSON (production's
    configuration), the line is written directly, the same line the logging machinery would
    write: the record, its filter and the formatter's walk over the record were about 17 of
    the line's 39 µs per request here (an introspection in process is about 200). The server
    queues it for a thread of its own to write (:class:`LineBatch`). Any other
    configuration (text in development, a handler or filter someone added, pytest's capture)
    goes through ``logging`` as before."""
    if path in QUIET_PATHS:
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    handlers = _json_handlers()
    if handlers is None:
        access_log.info("%s %s %s", method, path, status,
                        extra={"method": method, "path": path, "status": status,
                               "duration_ms": duration_ms, "remote_addr": remote_addr})
        return
    if not handlers:
        return
    _emit(handlers, _access_line(time.time(), method, path, status, duration_ms, remote_addr,
                                 _request_id.get() or "-"))


def info(logger: logging.Logger, message: str, *args: Any) -> None:
    """``logger.info(message, *args)`` for a line with no fields of its own (an audit event's),
    written as :func:`access` writes its line: built directly and queued for the worker's
    writer where every handler it reaches is one of ours writing JSON, else through
    ``logging``. Through ``logging`` it cost a token request about 40 µs, 4 % of a refresh
    (bench/README.md, seventeenth round)."""
    handlers = _json_handlers(logger)
    if handlers is None:
        logger.info(message, *args)
        return
    if handlers:
        _emit(handlers, _info_line(time.time(), logger.name, message % args if args else message,
                                   _request_id.get() or "-"))


def _emit(handlers: list[logging.StreamHandler[Any]], line: str) -> None:
    """``line`` to ``handlers``: queued where the worker batches its lines, else at once."""
    if _batch is not None and _batch.take(handlers, line):
        return
    for handler in handlers:
        _write(handler, line + handler.terminator)


def _write(handler: logging.StreamHandler[Any], text: str) -> None:
    """``text`` (whole lines) to ``handler``'s stream, as the handler writes a record."""
    handler.acquire()
    try:
        handler.stream.write(text)
        handler.flush()
    except Exception:  # noqa: BLE001 - reported as logging reports a failed write
        handler.handleError(access_log.makeRecord(
            access_log.name, logging.INFO, "", 0, text, None, None))
    finally:
        handler.release()


#: Lines a worker queues at most; past that a request writes its own line.
MAX_QUEUED = 10_000


class LineBatch:
    """The lines written directly (:func:`access`, :func:`info`: the access lines and the
    audit events' lines), waiting up to ``delay`` seconds to be written together by a thread
    of the worker's own (``SSO_ACCESS_LOG_DELAY``).

    A write is a system call, and the request's thread lets the other threads run while it
    is in one: under granian, which answers a worker's requests on threads of one process,
    that cost a request 14 to 27 CPU-µs of switching between threads, more than the line
    itself (bench/README.md, eleventh round). Here the request's thread only queues its
    line. What is given up: the lines queued when a worker dies without stopping (killed,
    out of memory) are lost, at most ``delay`` seconds of them (an audit event stays a row
    in the database), and such a line can reach the log up to ``delay`` seconds after the
    lines logged beside it. A stopping worker writes what is queued and each line from then
    on at once (:func:`stop_batching`, from ``sso.wsgi``)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.stopped = False
        self._reset()

    def _reset(self) -> None:
        """A fresh queue and no writer yet: at start, and in a forked child (a worker)."""
        self.queued: deque[tuple[list[logging.StreamHandler[Any]], str]] = deque()
        self.due = threading.Event()
        self.writer: threading.Thread | None = None
        self.starting = threading.Lock()

    def take(self, handlers: list[logging.StreamHandler[Any]], line: str) -> bool:
        """Queue ``line`` for ``handlers``; False once stopped, or while the queue is full
        (a stream that takes no more: the caller writes the line and waits, as before)."""
        if self.stopped or len(self.queued) >= MAX_QUEUED:
            return False
        if self.writer is None:
            self._start()
        self.queued.append((handlers, line))
        if not self.due.is_set():
            self.due.set()
        return True

    def _start(self) -> None:
        with self.starting:
            if self.writer is None:
                writer = threading.Thread(target=self._run, name="sso-log-lines", daemon=True)
                writer.start()
                self.writer = writer

    def _run(self) -> None:
        while True:
            self.due.wait()
            time.sleep(self.delay)
            self.due.clear()  # before taking the queue: a line queued from here wakes us again
            self.write_queued()

    def write_queued(self) -> None:
        """Write every queued line now, each handler's lines in one write."""
        texts: dict[logging.StreamHandler[Any], list[str]] = {}
        while True:
            try:
                handlers, line = self.queued.popleft()
            except IndexError:
                break
            for handler in handlers:
                texts.setdefault(handler, []).append(line)
        for handler, lines in texts.items():
            _write(handler, handler.terminator.join(lines) + handler.terminator)


#: The worker's queue of access lines (:func:`configure_for`); None: each line at once.
_batch: LineBatch | None = None


def stop_batching() -> None:
    """Write the queued lines, and each one from now on at once (a worker that stops,
    a process that exits)."""
    batch = _batch
    if batch is not None:
        batch.stopped = True
        batch.write_queued()


def _forked() -> None:
    if _batch is not None:
        _batch._reset()


os.register_at_fork(after_in_child=_forked)
atexit.register(stop_batching)


def _ours_in_json(handler: logging.Handler) -> bool:
    return (getattr(handler, "_sso", False) and isinstance(handler, logging.StreamHandler)
            and handler.stream is not None and type(handler.formatter) is JsonFormatter
            and len(handler.filters) == 1 and isinstance(handler.filters[0], RequestIdFilter))


def _json_handlers(source: logging.Logger = access_log
                   ) -> list[logging.StreamHandler[Any]] | None:
    """The handlers an INFO line of ``source`` reaches, if each is one of ours writing JSON
    with only the request id's filter and no logger on the way filters; else None."""
    if not source.isEnabledFor(logging.INFO):
        return []
    found = []
    logger: logging.Logger | None = source
    while logger is not None:
        if logger.filters:
            return None
        for handler in logger.handlers:
            if handler.level > logging.INFO:
                continue
            if not _ours_in_json(handler):
                return None
            found.append(handler)  # type: ignore[arg-type]
        logger = logger.parent if logger.propagate else None
    return found


def serving(request_id: str) -> contextvars.Token[str | None]:
    """Make ``request_id`` the id on log lines written from here (until :func:`served`)."""
    return _request_id.set(request_id)


def served(token: contextvars.Token[str | None]) -> None:
    _request_id.reset(token)


def _answer(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[HEADER] = request_id
        access(request.method, request.path, response.status_code,
               g.get("request_started") or time.perf_counter(), request.remote_addr)
    return response


def _end(_error: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        try:
            _request_id.reset(token)
        except ValueError:  # set in another context (a streamed response's generator)
            _request_id.set(None)


def init_app(app: Flask) -> None:
    log_format = app.config.get("LOG_FORMAT") or (
        "text" if app.config["ENV"] == "development" or app.config["TESTING"] else "json")
    if log_format not in ("json", "text"):
        from .config import ConfigError  # noqa: PLC0415

        raise ConfigError("SSO_LOG_FORMAT must be json or text")
    level = app.config.get("LOG_LEVEL")
    if level and str(level).upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        from .config import ConfigError  # noqa: PLC0415

        raise ConfigError("SSO_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    app.config["LOG_FORMAT"] = log_format
    app.before_request(_begin)
    app.after_request(_answer)
    app.teardown_request(_end)
