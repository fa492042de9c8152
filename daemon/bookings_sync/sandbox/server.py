"""The sandbox's HTTP layer: one threaded HTTP/1.1 server for Accounts, CRM, Bookings and the
``/_sandbox`` control surface, with fault injection and a request log.

Every request is logged (endpoint name, method, path, query, form, JSON body, request headers,
status, and the fault it took, if any) with credentials masked (an Authorization header keeps
only its scheme) — the log is test evidence and must itself be safe to print. A request that
takes a fault (``faults.py``: kinds, parameters, replies) gets the fault's reply instead of the
normal one, or the normal one as the fault changes it.

``Sandbox.on_page(endpoint, query)``, when set, runs for every 200 page of ``crm.list`` and
``crm.deleted`` once that page is final and before it is sent: a test edits data "between two
page requests" without racing the client.

HTTP/1.1 with keep-alive: every reply has an exact Content-Length, except 204 (none, per RFC)
and the streamed replies of the trickle and oversize faults, which may be chunked and always
end the connection (``Connection: close``).
"""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
from urllib.parse import parse_qs, urlsplit

from . import accounts, bookings, control, crm, faults
from .messages import Reply, Request

MASKED = {"client_secret", "refresh_token", "access_token", "code"}


def endpoint_name(method: str, path: str) -> str:
    if path.startswith("/oauth/"):
        return "accounts.token"
    if path.startswith("/bookings/"):
        return "bookings." + path.rstrip("/").rsplit("/", 1)[-1]
    if path.startswith("/crm/"):
        return crm.endpoint_name(method, path)
    if path.startswith("/_sandbox/"):
        return "control." + path.rstrip("/").rsplit("/", 1)[-1]
    return "unknown"


def _multipart(ctype: str, raw: bytes) -> dict:
    import email.parser
    import email.policy
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + raw)
    form = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            form[name] = part.get_payload(decode=True).decode("utf-8", "replace")
    return form


def _mask(values: dict) -> dict:
    return {k: ("***" if k in MASKED else v) for k, v in values.items()}


def _mask_headers(headers) -> dict:
    """Request headers for the log: credentials keep only their scheme ("Zoho-oauthtoken ***")."""
    out = {}
    for key, value in headers.items():
        if key.lower() in ("authorization", "proxy-authorization", "cookie"):
            scheme = value.split(" ", 1)[0] if " " in value.strip() else ""
            value = f"{scheme} ***".strip()
        out[key] = value
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ZohoSandbox/1.0"
    # Headers and body leave in separate writes; without TCP_NODELAY, Nagle + delayed ACK
    # would add ~40 ms to every reply.
    disable_nagle_algorithm = True
    sandbox = None    # set per server class

    def log_message(self, format, *args):   # the request log replaces stderr chatter
        pass

    def date_time_string(self, timestamp=None):
        # The Date header tells clients the server's time: the sandbox's clock, frozen or not.
        import email.utils
        return email.utils.format_datetime(self.sandbox.clock.now(), usegmt=True)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        sandbox = self.sandbox
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form, body = {}, None
        ctype = self.headers.get("Content-Type", "")
        # Zoho's own CRM SDK sends its JSON bodies (PUT records, cancel) with no Content-Type
        # at all (zohocrmsdk8-0, APIHTTPConnector); Zoho reads them as JSON, so must we.
        if raw and ("json" in ctype or (not ctype and raw.lstrip()[:1] in (b"{", b"["))):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        elif raw and ctype.lower().startswith("multipart/form-data"):
            # Public Bookings clients post multipart forms; Zoho reads them like url-encoded.
            form = _multipart(ctype, raw)
        elif raw:
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"),
                                                 keep_blank_values=True).items()}
        name = endpoint_name(method, url.path)
        request = Request(method, url.path, query, form, body, self.headers, endpoint=name)
        entry = {"endpoint": name, "method": method, "path": url.path, "query": _mask(query),
                 "form": _mask(form), "json": _mask(body) if isinstance(body, dict) else body,
                 "headers": _mask_headers(self.headers), "status": None,
                 "at": sandbox.clock.now()}
        fault = None
        if not url.path.startswith("/_sandbox/"):
            sandbox._record(name, entry)
            fault = sandbox._faults.take(name, url.path)
            if fault is not None:
                entry["fault"] = fault.kind
        reply = faults.before(fault, sandbox, request) if fault else None
        if reply is faults.DROP:
            entry["status"] = 0
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if reply is None:
            reply = self._answer(request, entry)
            if fault:
                reply = faults.after(fault, sandbox, request, reply)
        self._send(reply, entry)

    def _answer(self, request: Request, entry: dict) -> Reply:
        """The normal reply, after the ``on_page`` hook has run for a list page."""
        try:
            reply = self._route(request)
        except Exception as exc:   # a sandbox bug must show as Zoho's 500, not a hang
            reply = Reply(500, {"code": "INTERNAL_ERROR", "details": {"error": repr(exc)},
                                "message": "Internal server error occurred.", "status": "error"})
        hook = self.sandbox.on_page
        if hook is not None and request.endpoint in faults.LISTS and reply.status == 200:
            # The page is final (encoded) before the hook runs, and the client cannot ask for
            # the next page before it has this one: whatever the hook changes happens strictly
            # between two page requests — deterministically, which "after sending" is not.
            reply.freeze()
            try:
                hook(request.endpoint, dict(request.query))
            except Exception as exc:     # a broken hook must not take the connection down
                entry["hook_error"] = repr(exc)
        return reply

    def _route(self, request: Request) -> Reply:
        sandbox = self.sandbox
        path = request.path
        if path == "/oauth/v2/token" and request.method == "POST":
            return accounts.token(sandbox.world, request, sandbox.url)
        if path.startswith("/crm/"):
            return crm.handle(sandbox, request)
        if path.startswith("/bookings/v1/json/"):
            return bookings.handle(sandbox, request)
        if path.startswith("/_sandbox/"):
            return control.handle(sandbox, request)
        return Reply(404, "<html><head><title>404 Not Found</title></head><body>Not Found"
                          "</body></html>", content_type="text/html")

    def _send(self, reply: Reply, entry: dict) -> None:
        entry["status"] = reply.status
        pieces, length = reply.stream, reply.length
        streamed = pieces is not None
        if not streamed:
            payload = reply.encode()
            pieces, length = (payload,), len(payload)
        chunked = length is None
        try:
            self.send_response(reply.status)
            if reply.status in (204, 304):
                # RFC 9110: no body and no Content-Length on 204; the client knows it is empty.
                pieces, chunked = (), False
            else:
                self.send_header("Content-Type", reply.content_type)
                self.send_header(*(("Transfer-Encoding", "chunked") if chunked
                                   else ("Content-Length", str(length))))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            if streamed:
                # A stream may end short (the sandbox stopping): never reuse its connection.
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            for piece in pieces:
                if piece:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        # A client killed mid-request (kill -9 tests, the bench's kill halfway) resets its
        # socket: that is the client's business, not a sandbox fault worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def serve(sandbox, host: str, port: int) -> tuple[Server, threading.Thread]:
    handler = type("BoundHandler", (Handler,), {"sandbox": sandbox})
    server = Server((host, port), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="zoho-sandbox", daemon=True)
    thread.start()
    return server, thread
