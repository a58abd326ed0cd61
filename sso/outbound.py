"""Calls out of the process to endpoints that someone else runs (docs/hardening.md).

Every HTTP call to an app (signed events now, back-channel logout later) goes through
:func:`post`, which holds these promises whatever the other side does:

* a *total* deadline: connect, TLS, sending and every byte of the answer together, so an
  endpoint that trickles one byte a second is cut off at the deadline, not after each read;
* a cap on the answer's size (headers and body), read while reading, never after;
* redirects are not followed (a 3xx is an answer like any other);
* the address is checked twice: the URL when it is registered (:func:`check_url`) and every
  address the host name resolves to right before connecting, so a name that later points at
  a private, loopback, link-local or cloud-metadata address is refused
  (``SSO_OUTBOUND_ALLOW`` lists the hosts and networks an admin trusts anyway);
* per endpoint (scheme, host, port) a circuit breaker and a cap on concurrent calls, so a
  dead or slow app costs one deadline now and then, not one per message or per sign-in.

The caller holds no database connection while waiting (the outbox closes its session first).
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_URL_LENGTH = 500
HEADER_CAP = 16 * 1024
#: Host names that are, or are known to serve, a cloud's instance metadata.
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog",
                            "instance-data", "instance-data.ec2.internal"})
LOOPBACK_NAMES = ("localhost", "localhost.localdomain")
#: A last label that is a number: resolvers read such names as addresses (0x7f.1, 2130706433).
_NUMERIC_HOST = re.compile(r"[0-9]+|0x[0-9a-f]*", re.IGNORECASE)


class EndpointRefused(ValueError):
    """An endpoint this provider will not call; the message says why (for the admin)."""


class OutboundError(RuntimeError):
    """A call that did not get an answer (timeout, refused connection, open circuit...)."""


class OutboundTimeout(OutboundError):
    pass


class CircuitOpen(OutboundError):
    pass


class Busy(OutboundError):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    #: The body went over the cap and was cut there.
    truncated: bool = False


# Addresses.


def _networks(allow: Iterable[str]) -> tuple[set[str], list[Any]]:
    names: set[str] = set()
    networks = []
    for entry in allow:
        entry = entry.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return names, networks


def allow_list(config: Mapping[str, Any]) -> list[str]:
    """``SSO_OUTBOUND_ALLOW``: host names and networks (CIDR) an admin trusts, comma-separated
    or a JSON list."""
    value = config.get("OUTBOUND_ALLOW") or []
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value if str(v).strip()]


def development(config: Mapping[str, Any]) -> bool:
    return config.get("ENV") == "development" or bool(config.get("TESTING"))


def _forbidden_address(address: Any) -> str | None:
    """Why this address is not a public one, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local (cloud metadata) address"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return "not a unicast address"
    if address.is_private or not address.is_global:
        return "a private address"
    return None


def address_allowed(address: Any, *, dev: bool, allow: Collection[str],
                    host: str = "") -> str | None:
    """None if the provider may connect to ``address`` (of ``host``), else why not."""
    names, networks = _networks(allow)
    if host.lower().rstrip(".") in names or any(address in net for net in networks):
        return None
    why = _forbidden_address(address)
    if why == "a loopback address" and dev:
        return None
    return why


def check_url(url: str, *, dev: bool, allow: Collection[str] = (), what: str = "endpoint"
              ) -> str:
    """``url`` if the provider may post to it, else :class:`EndpointRefused` with the reason.

    https only; plain http only to a loopback host in development (``SSO_ENV=development``);
    a valid port; no credentials, fragment, spaces or control characters; no private,
    loopback, link-local or metadata host unless ``allow`` names it. Names are resolved only
    at delivery time (:func:`post`), where the same rules apply to each address.
    """
    if not isinstance(url, str) or not url:
        raise EndpointRefused(f"{what}: an absolute https URL is required")
    if len(url) > MAX_URL_LENGTH:
        raise EndpointRefused(f"{what}: longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in url):
        raise EndpointRefused(f"{what}: spaces, control or non-ASCII characters are not "
                              "allowed (write an international host name in punycode)")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise EndpointRefused(f"{what}: an absolute https URL is required")
    if "@" in parts.netloc:
        raise EndpointRefused(f"{what}: credentials in the URL are not allowed")
    if parts.fragment or "#" in url:
        raise EndpointRefused(f"{what}: a fragment is not allowed")
    try:
        port = parts.port
    except ValueError:
        raise EndpointRefused(f"{what}: the port must be a number from 1 to 65535") from None
    if port == 0 or (parts.netloc.endswith(":") and port is None):
        raise EndpointRefused(f"{what}: the port must be a number from 1 to 65535")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise EndpointRefused(f"{what}: the URL has no host")
    names, _ = _networks(allow)
    try:
        literal: Any = ipaddress.ip_address(host)
    except ValueError:
        literal = None
        if _NUMERIC_HOST.fullmatch(host.rsplit(".", 1)[-1]):
            raise EndpointRefused(f"{what}: write the address as a plain IP address or a "
                                  "host name") from None
    loopback = (literal is not None and literal.is_loopback) or host in LOOPBACK_NAMES \
        or host.endswith(".localhost")
    if parts.scheme == "http" and not (dev and loopback):
        raise EndpointRefused(f"{what}: use https (plain http only to a loopback address "
                              "with SSO_ENV=development)")
    if host in names:
        return url
    if host in METADATA_NAMES or host.endswith(".internal") and "metadata" in host:
        raise EndpointRefused(f"{what}: {host} is a cloud metadata service")
    if loopback and not dev:
        raise EndpointRefused(f"{what}: a loopback host is allowed only with "
                              "SSO_ENV=development (or list it in SSO_OUTBOUND_ALLOW)")
    if literal is not None:
        why = address_allowed(literal, dev=dev, allow=allow, host=host)
        if why:
            raise EndpointRefused(f"{what}: {host} is {why} (list it in SSO_OUTBOUND_ALLOW "
                                  "if this provider should reach it)")
    return url


# Breakers and caps, per endpoint, per process.


@dataclass
class _Endpoint:
    slots: threading.BoundedSemaphore
    failures: int = 0
    open_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


_endpoints: dict[tuple[str, str, int], _Endpoint] = {}
_endpoints_lock = threading.Lock()


def _endpoint(key: tuple[str, str, int], concurrency: int) -> _Endpoint:
    with _endpoints_lock:
        found = _endpoints.get(key)
        if found is None:
            found = _endpoints[key] = _Endpoint(threading.BoundedSemaphore(concurrency))
        return found


def reset() -> None:
    """Forget every breaker (tests, and an admin who fixed an app and redelivers)."""
    with _endpoints_lock:
        _endpoints.clear()


def _key(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return (parts.scheme, (parts.hostname or "").rstrip(".").lower(),
            parts.port or _default_port(parts.scheme))


def reset_endpoint(url: str) -> None:
    """Close the circuit of ``url``'s endpoint (an admin redelivers after fixing the app)."""
    with _endpoints_lock:
        _endpoints.pop(_key(url), None)


def breaker_state(url: str) -> dict[str, Any]:
    found = _endpoints.get(_key(url))
    if found is None:
        return {"failures": 0, "open": False}
    return {"failures": found.failures, "open": found.open_until > time.monotonic()}


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


# Resolution with a deadline: getaddrinfo cannot be interrupted, so it runs in a small pool.
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sso-resolve")


def _resolve(host: str, port: int, timeout: float) -> list[tuple[Any, ...]]:
    future = _resolver.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    try:
        return future.result(timeout=max(timeout, 0.001))
    except FutureTimeout:
        raise OutboundTimeout(f"timed out resolving {host}") from None
    except OSError as error:
        raise OutboundError(f"cannot resolve {host}: {error}") from None


def _settings(config: Mapping[str, Any]) -> tuple[int, int, float]:
    return (int(config.get("OUTBOUND_CONCURRENCY", 4)),
            int(config.get("OUTBOUND_BREAKER_FAILURES", 3)),
            float(config.get("OUTBOUND_BREAKER_SECONDS", 30)))


def post(url: str, body: bytes, headers: Mapping[str, str], *, deadline: float,
         config: Mapping[str, Any], max_bytes: int = 64 * 1024, wait_for_slot: bool = True
         ) -> Response:
    """POST ``body`` to ``url`` and return the answer, all within ``deadline`` seconds.

    Raises :class:`EndpointRefused` for an address the provider must not reach,
    :class:`CircuitOpen` while the endpoint's breaker is open, :class:`Busy` when the
    endpoint already has its share of calls in flight (and ``wait_for_slot`` is False or the
    deadline passed waiting), :class:`OutboundTimeout` and :class:`OutboundError` otherwise.
    """
    dev, allow = development(config), allow_list(config)
    check_url(url, dev=dev, allow=allow)
    started = time.monotonic()
    end = started + deadline
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    port = parts.port or _default_port(parts.scheme)
    concurrency, threshold, open_seconds = _settings(config)
    endpoint = _endpoint((parts.scheme, host, port), concurrency)
    with endpoint.lock:
        now = time.monotonic()
        if endpoint.open_until > now:
            raise CircuitOpen(f"circuit open for {host}:{port} after {endpoint.failures} "
                              "failures; the next try waits")
        if endpoint.failures >= threshold:
            # Half-open: this call is the trial; others wait for its outcome.
            endpoint.open_until = now + open_seconds
    if not endpoint.slots.acquire(timeout=max(end - time.monotonic(), 0) if wait_for_slot
                                  else 0):
        raise Busy(f"{host}:{port} already has {concurrency} calls in flight")
    try:
        response = _post(parts, host, port, body, headers, end, dev, allow, max_bytes)
    except EndpointRefused:
        raise
    except OutboundError:
        _failed(endpoint, threshold, open_seconds)
        raise
    finally:
        endpoint.slots.release()
    if response.status >= 500:
        _failed(endpoint, threshold, open_seconds)
    else:
        with endpoint.lock:
            endpoint.failures, endpoint.open_until = 0, 0.0
    return response


def _failed(endpoint: _Endpoint, threshold: int, open_seconds: float) -> None:
    with endpoint.lock:
        endpoint.failures += 1
        if endpoint.failures >= threshold:
            endpoint.open_until = time.monotonic() + open_seconds


def _remaining(end: float, doing: str) -> float:
    left = end - time.monotonic()
    if left <= 0:
        raise OutboundTimeout(f"timed out {doing}")
    return left


def _post(parts: Any, host: str, port: int, body: bytes, headers: Mapping[str, str],
          end: float, dev: bool, allow: Collection[str], max_bytes: int) -> Response:
    infos = _resolve(host, port, _remaining(end, "resolving"))
    addresses = []
    for family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%")[0])
        why = address_allowed(address, dev=dev, allow=allow, host=host)
        if why:
            raise EndpointRefused(f"{host} resolves to {address}, {why} (list it in "
                                  "SSO_OUTBOUND_ALLOW if this provider should reach it)")
        addresses.append((family, sockaddr))
    if not addresses:
        raise OutboundError(f"{host} has no address")
    last: Exception | None = None
    sock = None
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(_remaining(end, "connecting"))
            sock.connect(sockaddr)
            break
        except OutboundError:
            sock.close()
            raise
        except TimeoutError:
            sock.close()
            raise OutboundTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as error:
            sock.close()
            sock, last = None, error
    if sock is None:
        raise OutboundError(f"cannot connect to {host}:{port}: {last}")
    try:
        if parts.scheme == "https":
            context = ssl.create_default_context()
            sock.settimeout(_remaining(end, "in the TLS handshake"))
            sock = context.wrap_socket(sock, server_hostname=host)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = host if port == _default_port(parts.scheme) else f"{host}:{port}"
        lines = [f"POST {path} HTTP/1.1", f"Host: {netloc}", "Connection: close",
                 f"Content-Length: {len(body)}", "User-Agent: sso-provider"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        sock.settimeout(_remaining(end, "sending"))
        sock.sendall(request)
        return _read(sock, end, max_bytes)
    except TimeoutError:
        raise OutboundTimeout(f"timed out waiting for {host}:{port} to answer") from None
    except ssl.SSLError as error:
        raise OutboundError(f"TLS with {host}:{port} failed: {error}") from None
    except OSError as error:
        raise OutboundError(f"{host}:{port}: {error}") from None
    finally:
        sock.close()


def _read(sock: socket.socket, end: float, max_bytes: int) -> Response:
    buffer = bytearray()
    head: tuple[int, dict[str, str]] | None = None
    body_start = 0
    closed = False
    while True:
        if head is None:
            split = buffer.find(b"\r\n\r\n")
            if split >= 0:
                head = _parse_head(bytes(buffer[:split]))
                body_start = split + 4
            elif len(buffer) > HEADER_CAP:
                raise OutboundError("the answer's headers are too large")
        if head is not None:
            status, headers = head
            have = len(buffer) - body_start
            length = headers.get("content-length")
            if status in (204, 304) or (length is not None and length.isdigit()
                                        and have >= int(length)):
                break
            if have > max_bytes or closed:
                break
            if headers.get("transfer-encoding", "").lower() == "chunked" and \
                    buffer.endswith(b"0\r\n\r\n"):
                break
        if closed:
            raise OutboundError("the connection closed before a complete answer")
        sock.settimeout(_remaining(end, "waiting for the answer"))
        chunk = sock.recv(16384)
        if not chunk:
            closed = True
            continue
        buffer += chunk
    status, headers = head
    body = bytes(buffer[body_start:])
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _unchunk(body)
    truncated = len(body) > max_bytes
    return Response(status, headers, body[:max_bytes], truncated)


def _parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    lines = raw.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/") or \
            not status_line[1].isdigit():
        raise OutboundError("the answer is not HTTP")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return int(status_line[1]), headers


def _unchunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return bytes(out)


def shutdown_after(seconds: float, sock_holder: Any) -> threading.Timer:
    """A timer that shuts ``sock_holder.sock`` down after ``seconds`` (a total deadline for
    libraries such as smtplib that only know per-operation timeouts)."""
    def fire() -> None:
        sock = getattr(sock_holder, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer
