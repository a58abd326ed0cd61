"""A small SET recipient (RFC 8935) on a real port, as an ERP would run one.

It verifies each SET against the provider's JWKS (signature, ``typ``, ``iss``, ``aud``) and
answers 202, or 400 with an RFC 8935 error; ``script`` makes it answer other statuses first
(5xx to exercise the provider's retries).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet


@dataclass
class Receiver:
    jwks: Callable[[], dict[str, Any]]
    issuer: str
    audience: str
    #: Statuses to answer before verifying (consumed one per request), e.g. [503, 500].
    script: list[int] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    #: The JOSE headers of the accepted SETs.
    headers: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    requests: int = 0
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/events"

    def verify(self, token: str) -> dict[str, Any]:
        """What an ERP does with a SET; raises ValueError with an RFC 8935 error code."""
        keys = KeySet.import_key_set(self.jwks())
        try:
            header = jws.extract_compact(token.encode()).protected
            claims = jwt.decode(token, keys, algorithms=["RS256", "ES256"]).claims
        except (JoseError, ValueError) as exc:
            raise ValueError("invalid_key") from exc
        if header.get("typ") != "secevent+jwt":
            raise ValueError("invalid_request")
        if claims.get("iss") != self.issuer:
            raise ValueError("invalid_issuer")
        if claims.get("aud") != self.audience:
            raise ValueError("invalid_audience")
        if not isinstance(claims.get("events"), dict) or "exp" in claims:
            raise ValueError("invalid_request")
        return claims

    def start(self, port: int = 0) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length).decode()
                with lock:
                    receiver.requests += 1
                    scripted = receiver.script.pop(0) if receiver.script else None
                if scripted is not None:
                    self.send_response(scripted)
                    self.end_headers()
                    return
                if self.headers.get("Content-Type") != "application/secevent+jwt":
                    self._error("invalid_request", "wrong media type")
                    return
                try:
                    claims = receiver.verify(body)
                except ValueError as error:
                    receiver.refused.append(str(error))
                    self._error(str(error), "SET rejected")
                    return
                receiver.accepted.append(claims)
                receiver.headers.append(dict(jws.extract_compact(body.encode()).protected))
                self.send_response(202)
                self.end_headers()

            def _error(self, code: str, description: str) -> None:
                data = json.dumps({"err": code, "description": description}).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
