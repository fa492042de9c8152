"""The request and reply shapes every sandbox handler speaks, apart from the HTTP server.

Handlers (``accounts``, ``crm``, ``bookings``, ``control``) take a :class:`Request` and return a
:class:`Reply` (CRM errors built by :func:`crm_error`); ``server`` turns bytes into the one and
the other into bytes. Keeping them here lets the handlers and the server each import this module
without importing one another.
"""

from __future__ import annotations

import json


class Reply:
    """A reply. ``stream`` (faults only: trickle, oversize) yields the body in pieces instead of
    ``body``; ``length`` is then its Content-Length, or None for chunked transfer coding."""

    def __init__(self, status: int, body=None, *, content_type="application/json;charset=UTF-8",
                 headers: dict | None = None, stream=None, length: int | None = None):
        self.status, self.body, self.content_type = status, body, content_type
        self.headers = headers or {}
        self.stream, self.length = stream, length

    def freeze(self) -> None:
        self._payload = self.encode()

    def encode(self) -> bytes:
        if getattr(self, "_payload", None) is not None:
            return self._payload
        if self.body is None:
            return b""
        if isinstance(self.body, (bytes, str)):
            return self.body.encode() if isinstance(self.body, str) else self.body
        return json.dumps(self.body).encode()


class Request:
    def __init__(self, method: str, path: str, query: dict, form: dict, body, headers,
                 endpoint: str = ""):
        self.method, self.path, self.query, self.form = method, path, query, form
        self.json, self.headers, self.endpoint = body, headers, endpoint

    @property
    def token(self) -> str | None:
        value = self.headers.get("Authorization", "")
        prefix = "Zoho-oauthtoken "
        return value[len(prefix):].strip() if value.startswith(prefix) else None

    def param(self, name: str) -> str | None:
        return self.query.get(name, self.form.get(name))


def crm_error(status: int, code: str, message: str, details: dict | None = None, headers=None):
    """A CRM error body: Zoho always sends all four keys (code, details, message, status)."""
    return Reply(status, {"code": code, "details": details or {}, "message": message,
                          "status": "error"}, headers=headers)
