"""One ``requests.Session`` for every Zoho API call, with the retry policy and error mapping.

Retry policy (urllib3's ``Retry`` mounted under requests, :class:`ZohoRetry`; ``retries`` = 4
re-sends at most, so 5 attempts):
- GET: retried on connection errors (refused, connect timeout), read timeouts, dropped
  connections, 429 and 500/502/503/504.
- POST/PUT/PATCH/DELETE (writes): re-sent only when the request provably never reached the
  server — a connection that could not be opened, or a 429 (refused unprocessed). Never after a
  read timeout, a dropped connection or a 5xx: those may have been applied, so they raise
  :class:`ZohoUnreachable` and the engine re-reads Bookings on a later cycle.
- Wait before re-send n (1, 2, …): ``Retry-After`` when the reply has one; otherwise
  ``backoff_factor · 2^(n-1)`` plus up to as much again of random jitter, capped at
  ``backoff_max``. A ``Retry-After`` longer than ``retry_after_limit`` (60 s) ends the retries at
  once (a later cycle tries again; a poller must not sit in one request for an hour).
- 401 INVALID_TOKEN (CRM JSON) or a Bookings 401 HTML page: the token is invalidated, a fresh one
  fetched, and the call sent once more; a second 401 is a :class:`ZohoAuthError`.

Every attempt is counted per service in :attr:`ZohoHttp.calls` (retries included; re-sent token
requests go to ``tokens.refreshes``): API calls are the customer's money. Each retry is logged as
``zoho.retry`` (service, method, path without query, status or error kind, attempt, wait).
Errors carry Zoho's code and message and the URL path, never a query string, header or body —
nothing that could hold a credential.
"""

from __future__ import annotations

import os
import random
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
from urllib3.exceptions import (InvalidHeader, MaxRetryError, NewConnectionError,
                                ConnectTimeoutError, ProtocolError, ReadTimeoutError,
                                ResponseError)
from urllib3.util.retry import Retry

from .auth import TokenProvider
from .errors import (BookingsError, ZohoApiError, ZohoAuthError, ZohoError, ZohoPayloadError,
                     ZohoUnreachable)

log = structlog.get_logger("bookings_sync.zoho.http")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_TITLE = re.compile(r"<title>\s*(.*?)\s*</title>", re.I | re.S)
# Which service the running request belongs to, for counting and logging retries (urllib3
# retries deep inside Session.send, where only the thread knows whose request it is). Requests
# sent outside ZohoHttp.request on our session are TokenProvider's: "accounts".
_current = threading.local()


class ZohoRetry(Retry):
    """urllib3 ``Retry`` with the policy above: a write may be re-sent after a 429, backoff
    starts at the first re-send, an over-long ``Retry-After`` gives up, and each re-send is
    logged, reported to ``on_retry(service)`` and slept through ``sleeper`` (tests inject it)."""

    on_retry: Callable[[str], None] | None = None
    retry_after_limit: float = 60.0
    sleeper: Callable[[float], None] = staticmethod(time.sleep)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429 and method.upper() in WRITE_METHODS:
            return bool(self.total)   # refused before processing: safe to send again
        return super().is_retry(method, status_code, has_retry_after)

    def new(self, **kw) -> "ZohoRetry":
        fresh = super().new(**kw)
        fresh.on_retry, fresh.sleeper = self.on_retry, self.sleeper
        fresh.retry_after_limit = self.retry_after_limit
        return fresh

    def increment(self, method=None, url=None, response=None, error=None, _pool=None,
                  _stacktrace=None):
        fresh = super().increment(method, url, response, error, _pool, _stacktrace)
        wait = self._retry_after(response)
        if wait is not None and wait > self.retry_after_limit:
            # urlopen hands the 429/503 itself back (raise_on_status=False); http maps it.
            raise MaxRetryError(_pool, url, ResponseError(f"Retry-After {wait:g} s"))
        return fresh

    def get_backoff_time(self) -> float:
        # urllib3 waits 0 s before the first re-send; a 429 or 5xx deserves a pause at once.
        attempt = len(self.history)
        if attempt == 0:
            return 0.0
        base = self.backoff_factor * 2 ** (attempt - 1)
        return min(self.backoff_max, base + random.uniform(0, base))

    def sleep(self, response=None) -> None:
        # Called by urlopen exactly once before each re-send, after increment().
        wait = self._retry_after(response) if self.respect_retry_after_header else None
        if not wait or wait <= 0:
            wait = self.get_backoff_time()
        last = self.history[-1] if self.history else None
        service = getattr(_current, "service", None) or "accounts"
        if last is not None:
            log.warning("zoho.retry", service=service, method=last.method,
                        path=urlsplit(last.url or "").path,
                        status=last.status or _error_kind(last.error),
                        attempt=len(self.history), wait=round(wait, 3))
        if self.on_retry:
            self.on_retry(service)
        if wait > 0:
            self.sleeper(wait)

    def _retry_after(self, response) -> float | None:
        if response is None or not response.headers.get("Retry-After"):
            return None
        try:
            return self.get_retry_after(response)
        except InvalidHeader:
            return None     # unreadable: fall back to our own backoff


def _error_kind(error: Exception | None) -> str:
    if isinstance(error, (NewConnectionError, ConnectTimeoutError)):
        return "connect_error"
    if isinstance(error, ReadTimeoutError):
        return "read_timeout"
    if isinstance(error, ProtocolError):
        return "connection_dropped"
    return type(error).__name__ if error else "unknown"


def make_session(retries: int = 4, backoff_factor: float = 0.5, backoff_max: float = 60.0,
                 on_retry: Callable[[str], None] | None = None,
                 retry_after_limit: float = 60.0) -> requests.Session:
    """A Session with :class:`ZohoRetry` mounted on http:// and https://."""
    retry = ZohoRetry(
        total=retries, connect=retries, read=retries, status=retries, other=0, redirect=0,
        allowed_methods=frozenset({"GET", "HEAD", "OPTIONS"}),
        status_forcelist=RETRY_STATUSES, backoff_factor=backoff_factor, backoff_max=backoff_max,
        respect_retry_after_header=True, raise_on_status=False)
    retry.on_retry, retry.retry_after_limit = on_retry, retry_after_limit
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
    """Authenticated requests to CRM and Bookings. ``retries``, ``backoff_factor`` and
    ``backoff_max`` configure the session made here when none is given; a given session keeps
    its own (``make_session``). ``sleep`` is used for every retry wait on the session."""

    def __init__(self, tokens: TokenProvider, session: requests.Session | None = None, *,
                 timeout: tuple[float, float] = (5.0, 30.0), retries: int = 4,
                 backoff_factor: float = 0.5, backoff_max: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.tokens = tokens
        self.session = session or make_session(retries, backoff_factor, backoff_max)
        self.timeout = timeout
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

    def request(self, service: str, method: str, url: str, *, params=None, data=None,
                json=None, headers=None) -> requests.Response:
        """Send with auth; return a 2xx/3xx response or raise a :mod:`errors` exception."""
        token = self._token()
        response = self._send(service, method, url, token, params, data, json, headers)
        if _token_rejected(service, response):
            self.tokens.invalidate(token)
            token = self._token()
            response = self._send(service, method, url, token, params, data, json, headers)
            if _token_rejected(service, response):
                raise ZohoAuthError(
                    f"{_where(method, url)}: the API rejected a freshly minted access token "
                    f"(check the scopes of the client and that the org is in this data center)",
                    code=_code(response) or "INVALID_TOKEN", status_code=401)
        _raise_for_status(service, method, url, response)
        return response

    def _token(self) -> str:
        _current.service = "accounts"
        try:
            return self.tokens.token()
        finally:
            _current.service = None

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
        except requests.RequestException as exc:
            # Never str(exc): requests' texts quote the URL. Name the kind of failure only.
            kind, code = _failure(exc)
            text = {"connect_error": "cannot connect",
                    "read_timeout": f"no answer within {self.timeout[1]:g} s",
                    "connection_dropped": "connection dropped"}.get(kind, kind)
            raise ZohoUnreachable(f"{_where(method, url)}: {text}", code=code) from None
        finally:
            _current.service = None
            log.debug("zoho.request", service=service, method=method, path=urlsplit(url).path,
                      ms=round((time.monotonic() - started) * 1000))


def _failure(exc: Exception) -> tuple[str, str]:
    """(kind, code) of a requests exception, from the urllib3 error underneath it."""
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    if isinstance(exc, requests.ConnectTimeout) or isinstance(
            cause, (NewConnectionError, ConnectTimeoutError)):
        return "connect_error", "UNREACHABLE"
    if isinstance(exc, requests.ReadTimeout) or isinstance(cause, ReadTimeoutError):
        return "read_timeout", "TIMEOUT"
    if isinstance(cause, ProtocolError):
        return "connection_dropped", "UNREACHABLE"
    return f"request failed ({type(exc).__name__})", "UNREACHABLE"


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
        error_class: type[ZohoError] = ZohoAuthError if status in (401, 403) else BookingsError
        raise error_class(f"{where}: HTTP {status} {title}", status_code=status)
    if service == "bookings":
        raise BookingsError(f"{where}: HTTP {status}", status_code=status)
    raise ZohoPayloadError(f"{where}: HTTP {status} without a Zoho error body", status_code=status)


def _retry_after_note(response: requests.Response) -> str:
    value = response.headers.get("Retry-After")
    return f" (Retry-After: {value[:40]})" if value else ""
