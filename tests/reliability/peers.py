"""Misbehaving HTTP peers on real ports: trickling, hanging, huge, redirecting, slow."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any


class Peer:
    """A TCP server whose ``behave(conn, request_bytes)`` answers each connection in a thread.

    ``requests`` counts requests read; ``on_request`` runs first (to look at the provider
    while it waits for us).
    """

    def __init__(self, behave: Callable[[socket.socket, bytes], None],
                 on_request: Callable[[], Any] | None = None) -> None:
        self.behave = behave
        self.on_request = on_request
        self.requests = 0
        self.observed: list[Any] = []
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            with self.lock:
                self.requests += 1
            if self.on_request is not None:
                self.observed.append(self.on_request())
            self.behave(conn, body)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.close()


def answer(status: int = 202, body: bytes = b"", headers: str = "") -> Callable[..., None]:
    def behave(conn: socket.socket, _request: bytes) -> None:
        reason = {202: "Accepted", 400: "Bad Request", 302: "Found", 503: "Unavailable"}
        conn.sendall(f"HTTP/1.1 {status} {reason.get(status, 'X')}\r\n{headers}"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return behave


def trickle(every: float = 0.2, total: float = 20.0) -> Callable[..., None]:
    """A complete 202, one byte at a time: it arrives after ``total`` seconds."""
    def behave(conn: socket.socket, _request: bytes) -> None:
        message = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
        pause = max(every, total / len(message))
        for byte in message:
            conn.sendall(bytes([byte]))
            time.sleep(pause)
    return behave


def hang(seconds: float = 30.0) -> Callable[..., None]:
    def behave(conn: socket.socket, _request: bytes) -> None:
        time.sleep(seconds)
    return behave


def slow(seconds: float) -> Callable[..., None]:
    """Answers 202 after ``seconds``."""
    def behave(conn: socket.socket, request: bytes) -> None:
        time.sleep(seconds)
        answer(202)(conn, request)
    return behave


def huge(status: int = 400, size: int = 32 * 1024 * 1024) -> Callable[..., None]:
    """An answer with a body of ``size`` bytes; records how much of it went out."""
    sent = {"bytes": 0}

    def behave(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: {size}\r\n\r\n".encode())
        block = b"x" * 65536
        while sent["bytes"] < size:
            conn.sendall(block)
            sent["bytes"] += len(block)
    behave.sent = sent  # type: ignore[attr-defined]
    return behave
