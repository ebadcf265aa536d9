"""The HTTP side of serving strangers, apart from what is served (server.py): a request that
is not well-formed, authorized, or from this machine's own programs gets a 4xx with OpenAI's
error body, never a 5xx, a hang or an HTML page. In detail:

  - every refusal closes the connection (what follows an error cannot be trusted to frame
    the next request), after draining a bounded amount the client is still sending;
  - the stdlib's own refusals (bad request line, unknown method, HTTP/2, long URI) are OpenAI
    errors too; HTTP/0.9 is refused;
  - without an API key, requests a web page could make (an Origin header; on loopback, a
    Host that is not a loopback name, as after DNS rebinding) are refused;
  - with an API key, `_authorize` wants `Authorization: Bearer KEY` or `x-api-key: KEY`
    (auth.py);
  - a connection silent for READ_TIMEOUT mid-request is dropped; at most `max_connections`
    are open at once (a thread each), more are answered 503;
  - resets and timeouts are the client's doing and leave no traceback in the log; the one
    log line per request has its control characters escaped.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from engine.serve import auth
from engine.serve.request import BadRequest, body_length, error_body, read_body

READ_TIMEOUT = 60.0  # seconds a connection may sit silent (or a client not read) mid-request
LINGER_BYTES = 1 << 20  # an unread body drained before closing, so the answer is not reset
MAX_CONNECTIONS = 256
_BUSY_BODY = json.dumps(error_body("too many open connections; try again later",
                                   "server_error", code="overloaded")).encode()
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
         b"Connection: close\r\nRetry-After: 1\r\nContent-Length: "
         + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


def _hostname(host: str) -> str:
    """The name in a Host header: 'h:8000' → 'h', '[::1]:8000' → '::1'."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _printable(text: str, limit: int = 300) -> str:
    """`text` for a log line: control and format characters escaped, long text cut."""
    text = text if len(text) <= limit else text[:limit] + "…"
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class GuardedHandler(BaseHTTPRequestHandler):
    """Subclasses route with `self._handle(route)` from do_GET/do_POST; `route()` returns
    (status, log note) once it has answered, or raises BadRequest to be answered."""

    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"  # answers to garbage still carry a status line
    timeout = READ_TIMEOUT
    server: GuardedServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature)
        pass  # one line per request comes from _log instead

    def _log(self, status: int, t0: float, note: str = "") -> None:
        took = time.perf_counter() - t0
        what = f"{self.command} {self.path}" if getattr(self, "path", None) else \
            repr(getattr(self, "requestline", ""))  # the stdlib could not parse it
        line = f"{what} {status} {took:.2f}s{' ' + note if note else ''}"
        print(f"{self.client_address[0]} {_printable(line)}", file=sys.stderr, flush=True)

    def _json(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error_json(self, message: str, kind: str, param: str | None, code: str | None,
                    status: int) -> dict:
        """An error body in the shape of the API asked (OpenAI's here; subclasses choose)."""
        return error_body(message, kind, param, code)

    def _error(self, e: BadRequest) -> None:
        kind = "not_found_error" if e.status == 404 else "invalid_request_error"
        extra = {"Connection": "close"}
        if e.status == 401:
            extra["WWW-Authenticate"] = "Bearer"
        self.close_connection = True
        self._json(e.status, self._error_json(str(e), kind, e.param, e.code, e.status), extra)

    def _linger(self) -> None:
        """Drop what the client is still sending (bounded): closing a socket with unread data
        sends a reset, which can destroy the answer before the client reads it."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1)
            left = LINGER_BYTES
            while left > 0 and (chunk := self.connection.recv(min(left, 65536))):
                left -= len(chunk)
        except OSError:
            pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None
                   ) -> None:
        """The stdlib's own refusals, as OpenAI errors; none is a server fault."""
        if code == HTTPStatus.NOT_IMPLEMENTED:  # no do_<METHOD>
            code, message = 405, f"method {self.command!r} is not allowed; use GET or POST"
        elif code >= 500:  # 505: a version this server does not speak is a bad request
            code = 400
        message = message or HTTPStatus(code).phrase
        self._error(BadRequest(message, status=code))
        self._log(code, time.perf_counter(), message)
        self._linger()

    def parse_request(self) -> bool:
        self.path = ""  # not the last request's, should this one fail to parse
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":  # its answers have no status line
            self.request_version = self.default_request_version
            self.send_error(400, "HTTP/0.9 is not supported")
            return False
        return True

    def _handle(self, route) -> None:
        t0 = time.perf_counter()
        self.streaming = False  # once true, the status is out and errors go in-band
        try:
            self._refuse_browsers()
            status, note = route()
        except BadRequest as e:
            status, note = e.status, str(e)
            self._error(e)
        except TimeoutError:
            status, note = 408, "the client stopped sending mid-request"
            self._error(BadRequest(note, code="timeout", status=408))
        except ConnectionError:  # BrokenPipe, ConnectionReset: the client left
            status, note = 499, "client went away"
            self.close_connection = True
        except Exception as e:  # a bug (or shutting down): say so, keep serving
            status, note = self._fail(e)
        self._log(status, t0, note)
        if 400 <= status < 500:
            self._linger()

    def _fail(self, e: Exception, status: int = 500, says: str = "internal error"
              ) -> tuple[int, str]:
        note = f"{type(e).__name__}: {e}"
        self.close_connection = True
        if not self.streaming:
            self._json(status, self._error_json(f"{says}: {note}", "server_error", None, None,
                                                status), {"Connection": "close"})
        return status, note

    def _refuse_browsers(self) -> None:
        """Without an API key, anything that reaches the port may use the model, web pages a
        local user opens included: no CORS is offered, so they can only send requests with an
        Origin (cross-site) or, after DNS rebinding, a Host naming their own site. Refuse
        both. (With a key, a page cannot send it: the key is the guard.)"""
        if self.server.api_key is not None:
            return
        if self.headers.get("Origin") is not None:
            raise BadRequest("requests from web pages (with an Origin header) are refused",
                             code="forbidden", status=403)
        host = self.headers.get("Host")
        if self.server.loopback and host is not None and not auth.is_loopback(_hostname(host)):
            raise BadRequest(f"Host {host[:100]!r} is not this machine's loopback name",
                             code="forbidden", status=403)

    def _authorize(self) -> None:
        key = self.server.api_key
        if key is not None and not auth.authorized(self.headers.get("Authorization"), key,
                                                   self.headers.get("x-api-key")):
            raise BadRequest("missing or wrong API key: send the header 'Authorization: "
                             "Bearer KEY' (or 'x-api-key: KEY') with the key this server was "
                             "started with", code="invalid_api_key", status=401)

    def _body(self) -> bytes:
        return read_body(self.rfile, body_length(self.headers))


class GuardedServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` open (more get a 503 and are
    closed); IPv6 when `host` is an IPv6 address."""

    daemon_threads = True  # Ctrl-C does not wait for open connections

    def __init__(self, host: str, port: int, handler: type[GuardedHandler], *,
                 api_key: str | None = None, max_connections: int = MAX_CONNECTIONS) -> None:
        self.api_key, self.loopback = api_key, auth.is_loopback(host)
        self.slots = threading.BoundedSemaphore(max_connections)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), handler)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            try:
                request.sendall(_BUSY)
            except OSError:
                pass
            return self.shutdown_request(request)
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: the slot is not taken
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # a reset or a timeout: the client's doing
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/v1"
