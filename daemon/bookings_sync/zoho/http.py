"""Authenticated requests to CRM and Bookings, and Zoho's error shapes turned into exceptions.

The bytes go through :func:`transport.send` (retry policy, no redirects, a deadline for the whole
reply, a size cap). On top of it, :class:`ZohoHttp`:
- adds ``Authorization: Zoho-oauthtoken …`` from the :class:`~.auth.TokenProvider`;
- on 401 INVALID_TOKEN (CRM JSON) or a Bookings 401 HTML page invalidates the token, fetches a
  fresh one and sends the call once more; a second 401 is a :class:`ZohoAuthError`;
- encodes forms itself: ``form`` as ``application/x-www-form-urlencoded``, ``multipart`` as
  ``multipart/form-data`` (how Zoho documents the Bookings POST calls: ``curl --form``);
- maps error replies to :mod:`errors` exceptions.

Every attempt is counted per service in :attr:`ZohoHttp.calls` (retries included; re-sent token
requests go to ``tokens.refreshes``): API calls are the customer's money. Each retry is logged as
``zoho.retry`` (service, method, path without query, status or error kind, attempt, wait).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from typing import Callable
from urllib.parse import urlencode, urlsplit

import requests
from urllib3.filepost import encode_multipart_formdata

from .auth import TokenProvider
from .errors import (ZohoApiError, ZohoAuthError, ZohoError, ZohoPayloadError, ZohoUnreachable,
                     ZohoUnreadable)
from .transport import MAX_REPLY_BYTES, ZohoRetry, make_session, send

_TITLE = re.compile(r"<title>\s*(.*?)\s*</title>", re.I | re.S)


class ZohoHttp:
    """Authenticated requests to CRM and Bookings. ``retries``, ``backoff_factor`` and
    ``backoff_max`` configure the session made here when none is given; a given session keeps
    its own (``make_session``). ``sleep`` is used for every retry wait on the session.
    ``timeout`` is (connect, read) per socket operation; ``deadline`` bounds a whole reply."""

    def __init__(self, tokens: TokenProvider, session: requests.Session | None = None, *,
                 timeout: tuple[float, float] = (5.0, 30.0), deadline: float | None = None,
                 max_bytes: int = MAX_REPLY_BYTES, retries: int = 4,
                 backoff_factor: float = 0.5, backoff_max: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.tokens = tokens
        self.session = session or make_session(retries, backoff_factor, backoff_max)
        self.timeout = timeout
        self.deadline = deadline or timeout[1]
        self.max_bytes = max_bytes
        self.calls: Counter = Counter()
        self._lock = threading.Lock()
        for adapter in self.session.adapters.values():
            retry = getattr(adapter, "max_retries", None)
            if isinstance(retry, ZohoRetry):
                retry.on_retry = self._retried
                retry.sleeper = sleep

    def _retried(self, service: str) -> None:
        if service == "accounts":
            # A re-sent token request, inside TokenProvider's lock on this same thread.
            self.tokens.refreshes += 1
            return
        with self._lock:
            self.calls[service] += 1

    def request(self, service: str, method: str, url: str, *, params: dict | None = None,
                form: dict | None = None, multipart: dict | None = None, json=None,
                headers: dict | None = None) -> requests.Response:
        """Send with auth; return a 2xx (or 204/304) response or raise a :mod:`errors`
        exception."""
        body, content_type = _encode(form, multipart)
        if params:
            url = f"{url}?{urlencode(params)}"
        if content_type:
            headers = {**(headers or {}), "Content-Type": content_type}
        token = self.tokens.token()
        response = self._send(service, method, url, token, body, json, headers)
        if _token_rejected(service, response):
            self.tokens.invalidate(token)
            token = self.tokens.token()
            response = self._send(service, method, url, token, body, json, headers)
            if _token_rejected(service, response):
                raise ZohoAuthError(
                    f"{_where(method, url)}: the API rejected a freshly minted access token "
                    f"(check the scopes of the client and that the org is in this data center)",
                    code=_code(response) or "INVALID_TOKEN", status_code=401)
        _raise_for_status(service, method, url, response)
        return response

    def _send(self, service, method, url, token, body, json, headers) -> requests.Response:
        with self._lock:
            self.calls[service] += 1
        prepared = requests.PreparedRequest()
        prepared.prepare(method=method, url=url, data=body, json=json,
                         headers={**self.session.headers, **(headers or {}),
                                  "Authorization": f"Zoho-oauthtoken {token}"})
        return send(self.session, prepared, service=service, timeout=self.timeout,
                    deadline=self.deadline, max_bytes=self.max_bytes)


def _encode(form: dict | None, multipart: dict | None) -> tuple[bytes | str | None, str | None]:
    """The body and its Content-Type. Encoded here: requests' own encoder runs several
    typing-Protocol isinstance checks per call, a measurable share of a 10,000-action cycle."""
    if multipart is not None:
        return encode_multipart_formdata({k: str(v) for k, v in multipart.items()})
    if form is not None:
        return urlencode(form), "application/x-www-form-urlencoded"
    return None, None


def _where(method: str, url: str) -> str:
    return f"{method} {urlsplit(url).path}"


def _json(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        return None


def _code(response: requests.Response) -> str:
    body = _json(response)
    return str(body.get("code", "")) if isinstance(body, dict) else ""


def _token_rejected(service: str, response: requests.Response) -> bool:
    if response.status_code != 401:
        return False
    if service == "bookings":
        return True    # Bookings answers a bad token with an HTML page, no code to read
    return _code(response) in ("INVALID_TOKEN", "AUTHENTICATION_FAILURE", "")


def _raise_for_status(service: str, method: str, url: str, response: requests.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    where = _where(method, url)
    body = _json(response)
    if isinstance(body, dict) and isinstance(body.get("data"), list) and body["data"] \
            and isinstance(body["data"][0], dict) and "code" in body["data"][0]:
        body = body["data"][0]    # a write's per-record error: {"data": [{code, details, …}]}
    if isinstance(body, dict) and "code" in body:
        code, message = str(body.get("code")), str(body.get("message") or "")
        text = f"{where}: {message or code}"
        if status == 429 or status >= 500:
            raise ZohoUnreachable(text + _retry_after_note(response), code=code,
                                  status_code=status)
        if status in (401, 403) and code in ("OAUTH_SCOPE_MISMATCH", "AUTHENTICATION_FAILURE"):
            raise ZohoAuthError(text, code=code, status_code=status)
        raise ZohoApiError(text, code=code, status_code=status)
    if status == 429 or status >= 500:
        raise ZohoUnreachable(f"{where}: HTTP {status}{_retry_after_note(response)}",
                              code="TOO_MANY_REQUESTS" if status == 429 else "",
                              status_code=status)
    content_type = response.headers.get("Content-Type", "")
    if "html" in content_type:
        match = _TITLE.search(response.text[:4000])
        title = " ".join(match.group(1).split())[:120] if match else "an HTML error page"
        error_class: type[ZohoError] = ZohoAuthError if status in (401, 403) else ZohoUnreadable
        raise error_class(f"{where}: HTTP {status} {title}", status_code=status)
    if service == "bookings":
        raise ZohoUnreadable(f"{where}: HTTP {status}", status_code=status)
    raise ZohoPayloadError(f"{where}: HTTP {status} without a Zoho error body", status_code=status)


def _retry_after_note(response: requests.Response) -> str:
    value = response.headers.get("Retry-After")
    return f" (Retry-After: {value[:40]})" if value else ""
