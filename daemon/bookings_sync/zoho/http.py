"""One ``requests.Session`` for every Zoho API call, with the retry policy and error mapping.

Retry policy (urllib3's ``Retry`` mounted under requests, :class:`ZohoRetry`):
- GET: retried on connection errors, read timeouts, dropped connections, 429 and 5xx, with
  exponential backoff and jitter (``backoff_factor · 2^n``, capped at ``backoff_max``), honouring
  ``Retry-After`` when Zoho sends it.
- POST/PUT/DELETE (writes): re-sent only when the request provably never reached the server —
  a connection that could not be opened, or a 429 (the server refused it unprocessed). Never
  after a timeout, a dropped connection or a 5xx: those may have been applied, so they raise
  :class:`ZohoUnreachable` and the engine re-reads Bookings on a later cycle.
- 401 INVALID_TOKEN (CRM JSON) or a Bookings 401 HTML page: the token is invalidated, a fresh one
  fetched, and the call sent once more; a second 401 is a :class:`ZohoAuthError`.

Every attempt is counted per service in :attr:`ZohoHttp.calls` (retries included): API calls
are the customer's money. Errors carry Zoho's code and message and the URL path, never a query
string, header or body — nothing that could hold a credential.
"""

from __future__ import annotations

import os
import re
import threading
import urllib.request
import time
from collections import Counter
from typing import Callable
from urllib.parse import urlencode, urlsplit

import requests
import structlog
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .auth import TokenProvider
from .errors import (BookingsError, ZohoApiError, ZohoAuthError, ZohoError, ZohoPayloadError,
                     ZohoUnreachable)

log = structlog.get_logger("bookings_sync.zoho.http")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_TITLE = re.compile(r"<title>\s*(.*?)\s*</title>", re.I | re.S)
_current = threading.local()      # which service the running request belongs to (for counting)


class ZohoRetry(Retry):
    """urllib3 ``Retry`` that may re-send a write after a 429, and reports each retry."""

    on_retry: Callable[[str, str, int | None], None] | None = None

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429 and method.upper() in WRITE_METHODS:
            return bool(self.total)   # refused before processing: safe to send again
        return super().is_retry(method, status_code, has_retry_after)

    def new(self, **kw) -> "ZohoRetry":
        fresh = super().new(**kw)
        fresh.on_retry = self.on_retry
        return fresh

    def increment(self, method=None, url=None, response=None, error=None, _pool=None,
                  _stacktrace=None):
        fresh = super().increment(method, url, response, error, _pool, _stacktrace)
        # Reached only when another attempt will be made.
        if self.on_retry:
            path = urlsplit(url or "").path if url else ""
            self.on_retry(method or "", path, response.status if response is not None else None)
        return fresh


def make_session(retries: int = 4, backoff_factor: float = 0.5, backoff_max: float = 60.0,
                 on_retry: Callable[[str, str, int | None], None] | None = None) -> requests.Session:
    retry = ZohoRetry(
        total=retries, connect=retries, read=retries, status=retries, other=0, redirect=0,
        allowed_methods=frozenset({"GET", "HEAD", "OPTIONS"}),
        status_forcelist=RETRY_STATUSES, backoff_factor=backoff_factor, backoff_max=backoff_max,
        backoff_jitter=backoff_factor, respect_retry_after_header=True, raise_on_status=False)
    retry.on_retry = on_retry
    session = requests.Session()
    # requests re-reads every environment variable on every request when trust_env is on (a
    # third of the client's CPU in a 10,000-action cycle). Read proxy and CA settings once.
    session.proxies.update({k: v for k, v in urllib.request.getproxies().items()
                            if k in ("http", "https")})
    session.verify = (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                      or True)
    session.trust_env = False
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=4)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "bookings-sync"
    return session


class ZohoHttp:
    def __init__(self, tokens: TokenProvider, session: requests.Session | None = None, *,
                 timeout: tuple[float, float] = (5.0, 30.0), retries: int = 4,
                 backoff_factor: float = 0.5, backoff_max: float = 60.0):
        self.tokens = tokens
        self.session = session or make_session(retries, backoff_factor, backoff_max)
        self.timeout = timeout
        self.calls: Counter = Counter()
        self._lock = threading.Lock()
        for adapter in self.session.adapters.values():
            retry = getattr(adapter, "max_retries", None)
            if isinstance(retry, ZohoRetry):
                retry.on_retry = self._retried

    def _retried(self, method: str, path: str, status: int | None) -> None:
        service = getattr(_current, "service", "other")
        with self._lock:
            self.calls[service] += 1
        log.warning("zoho.retry", service=service, method=method, path=path,
                    status=status or "connection")

    def request(self, service: str, method: str, url: str, *, params=None, data=None,
                json=None, headers=None) -> requests.Response:
        """Send with auth; return a 2xx/3xx response or raise a :mod:`errors` exception."""
        token = self.tokens.token()
        response = self._send(service, method, url, token, params, data, json, headers)
        if _token_rejected(service, response):
            self.tokens.invalidate(token)
            token = self.tokens.token()
            response = self._send(service, method, url, token, params, data, json, headers)
            if _token_rejected(service, response):
                raise ZohoAuthError(
                    f"{_where(method, url)}: the API rejected a freshly minted access token "
                    f"(check the scopes of the client and that the org is in this data center)",
                    code=_code(response) or "INVALID_TOKEN", status_code=401)
        _raise_for_status(service, method, url, response)
        return response

    def _send(self, service, method, url, token, params, data, json, headers) -> requests.Response:
        all_headers = {"Authorization": f"Zoho-oauthtoken {token}", **(headers or {})}
        if isinstance(data, dict):
            # Encoded here: requests' own encoder runs several typing-Protocol isinstance
            # checks per call, a measurable share of a 10,000-reschedule cycle.
            data = urlencode(data)
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        if params:
            url = f"{url}?{urlencode(params)}"
            params = None
        with self._lock:
            self.calls[service] += 1
        _current.service = service
        started = time.monotonic()
        try:
            # Prepared here and handed to Session.send: Session.request would merge cookies,
            # auth and settings we never use, a fifth of the client's CPU per call.
            prepared = requests.PreparedRequest()
            prepared.prepare(method=method, url=url, params=params, data=data, json=json,
                             headers={**self.session.headers, **all_headers})
            return self.session.send(prepared, timeout=self.timeout, allow_redirects=False)
        except requests.Timeout:
            raise ZohoUnreachable(f"{_where(method, url)}: no answer within "
                                  f"{self.timeout[1]:g} s", code="TIMEOUT") from None
        except requests.ConnectionError as exc:
            kind = "connection dropped" if _dropped(exc) else "cannot connect"
            raise ZohoUnreachable(f"{_where(method, url)}: {kind}", code="UNREACHABLE") from None
        except requests.RequestException as exc:
            raise ZohoUnreachable(f"{_where(method, url)}: {type(exc).__name__}",
                                  code="UNREACHABLE") from None
        finally:
            _current.service = None
            log.debug("zoho.request", service=service, method=method, path=urlsplit(url).path,
                      ms=round((time.monotonic() - started) * 1000))


def _where(method: str, url: str) -> str:
    return f"{method} {urlsplit(url).path}"


def _dropped(exc: Exception) -> bool:
    text = repr(exc)
    return any(s in text for s in ("RemoteDisconnected", "ProtocolError", "Connection aborted",
                                   "ConnectionResetError", "IncompleteRead"))


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
        details = body.get("details") if isinstance(body.get("details"), dict) else {}
        text = f"{where}: {message or code}"
        if status == 429 or status >= 500:
            raise ZohoUnreachable(text, code=code, status_code=status, details=details)
        if status in (401, 403) and code in ("OAUTH_SCOPE_MISMATCH", "AUTHENTICATION_FAILURE"):
            raise ZohoAuthError(text, code=code, status_code=status, details=details)
        raise ZohoApiError(text, code=code, status_code=status, details=details)
    if status == 429 or status >= 500:
        raise ZohoUnreachable(f"{where}: HTTP {status}", status_code=status)
    content_type = response.headers.get("Content-Type", "")
    if "html" in content_type:
        match = _TITLE.search(response.text[:4000])
        title = match.group(1) if match else "an HTML error page"
        error_class: type[ZohoError] = ZohoAuthError if status in (401, 403) else BookingsError
        raise error_class(f"{where}: HTTP {status} {title}", status_code=status)
    if service == "bookings":
        raise BookingsError(f"{where}: HTTP {status}", status_code=status)
    raise ZohoPayloadError(f"{where}: HTTP {status} without a Zoho error body", status_code=status)
