"""The catcher: a second listener on 127.0.0.1, part of the sandbox, that records every request
it receives exactly as it arrived.

The ``redirect`` fault points here by default, so a test can prove that a client did *not*
follow a redirect, or that no secret travelled to "another host": ``Sandbox.catcher.requests``
holds each request's method, raw target (path and query), headers in order and body bytes.
Unlike the sandbox's request log this record is deliberately not masked — showing whether a
secret arrived is its whole purpose — so it is evidence for assertions, never something to
print. Every request is answered 200 ``{"caught": true}``. Bodies are read by Content-Length.
"""

from __future__ import annotations

import email.utils
import http.server
import threading


class Catcher:
    def __init__(self, clock, host: str = "127.0.0.1"):
        self.clock = clock
        self._lock = threading.Lock()
        self._requests: list[dict] = []
        catcher = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "SandboxCatcher/1.0"

            def log_message(self, format, *args):
                pass

            def date_time_string(self, timestamp=None):
                return email.utils.format_datetime(catcher.clock.now(), usegmt=True)

            def _catch(self):
                length = int(self.headers.get("Content-Length") or 0)
                catcher._add({"method": self.command, "target": self.path,
                              "headers": list(self.headers.items()),
                              "body": self.rfile.read(length) if length else b""})
                payload = b'{"caught": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _catch

        self._server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="sandbox-catcher", daemon=True).start()

    @property
    def requests(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._requests]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _add(self, record: dict) -> None:
        with self._lock:
            self._requests.append(record)
