"""Faults: the sandbox as a broken or hostile Zoho, on demand and deterministically.

One mechanism for every kind. ``Sandbox.inject(path_contains, kind, count=1, **params)`` (control
verb ``inject``) arms a fault; the next ``count`` requests whose path contains ``path_contains``
take it — ``count=None`` keeps it armed until ``Sandbox.clear_faults()``, which disarms every
kind. Armed faults are tried in the order they were armed and a request takes at most one. The
kinds marked *lists* apply only to the CRM list endpoints (``crm.list``, ``crm.deleted``): other
requests pass them by without using them up. A parameter given as None counts as not given.
Every faulted request is in the request log like any other (credentials masked) with
``"fault": kind``.

Kind [parameters=default]        What the client receives
-- transport ----------------------------------------------------------------------------------
429 [retry_after]                 CRM's TOO_MANY_REQUESTS, with ``Retry-After`` when given
500                               CRM's INTERNAL_ERROR
stall [stall_seconds=30]          the normal reply, after ``stall_seconds``
drop                              the socket closed without a byte of reply
redirect [status=302, location]   ``status`` (301/302/303/307/308) with ``Location``; by default
                                  the catcher (``catcher.py``) plus the request's own path and
                                  query — a 307/308 followed there re-sends the body too
trickle [interval=1.0]            the normal reply's status and headers at once, then its body
                                  one byte every ``interval`` seconds (exact Content-Length)
oversize [size=200000000,         200 with a JSON body of exactly ``size`` bytes
          content_length=True]    (``{"padding":"xxx…"}``) streamed from a generator, never held
                                  in memory; ``content_length=False``: chunked, no length
-- bodies that are not what the documents say --------------------------------------------------
html [status=200, body]           an HTML page: at 200 a sign-in page (what an expired SSO
                                  session serves), otherwise an nginx error page (a proxy's 502)
text [status=200, body]           text/plain (default: an Envoy "upstream connect error" line)
truncated [keep_bytes]            the normal reply cut after ``keep_bytes`` (default: half), with
                                  a Content-Length that matches the cut body
no_envelope                       the normal reply's JSON with its ``response`` object lifted to
                                  the top level (``{}`` when it has none)
empty [status=200]                no body at all (Content-Length: 0)
echo [status, code]               the API's own error shape, its message carrying the secrets the
                                  request presented (see ``ECHO``)
refuse [message, status, code]    the API's own error shape with ``message``, in which
                                  ``{client_id}``, ``{client_secret}``, ``{refresh_token}`` and
                                  ``{access_token}`` become what the request presented
-- lists: paging that lies ---------------------------------------------------------------------
page_repeat                       the first page, captured with ``more_records: true``, is every
                                  later reply: same data, same token, forever (a 204 captured
                                  is an empty page that claims more)
token_repeat                      real pages, but each after the first carries the first page's
                                  ``next_page_token`` (and ``more_records: true``): following it
                                  returns page N+1 again and again
page_short [keep=0]               the page cut to ``keep`` records with ``more_records: true``;
                                  a 204 becomes ``{"data": [], ...}`` with ``more_records: true``
page_endless                      a full page of fresh synthetic records (new ids, Modified_Time
                                  now) with ``more_records: true`` and a new token, every time
junk_items [items=[null,"x",42,[]]]  ``items`` put before the page's records in ``data`` (a 204
                                  becomes a page of only those)

The error shapes for ``echo`` / ``refuse``, by path: ``/oauth/`` → HTTP 200
``{"error": code, "error_description": message}`` (code ``invalid_client``); ``/bookings/`` →
HTTP 200 ``{"response": {"returnvalue": {"status": "failure", "message": message}, "status":
"success"}}`` (a business refusal); anything else → CRM's 401 ``{"code": "INVALID_TOKEN",
"details": {}, "message": message, "status": "error"}``. ``status`` and ``code`` override.
Zoho documents none of these faults' bodies; they are what proxies, SSO pages and confused
servers are seen to send, chosen here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import http
import json
import threading
from urllib.parse import urlencode

from . import bookings, crm, wire
from .messages import Reply
from .world import OWNER, second

LISTS = ("crm.list", "crm.deleted")
DROP = Reply(0)                       # before() result: close the socket, answer nothing
REQUIRED = object()

SIGN_IN_PAGE = ("<!DOCTYPE html><html><head><title>Zoho Accounts</title></head><body>"
                "<form method=\"post\" action=\"/signin\"><h1>Sign in</h1><p>to access Zoho "
                "Bookings</p></form></body></html>")
ENVOY_TEXT = ("upstream connect error or disconnect/reset before headers. "
              "reset reason: connection termination")
ECHO = {
    "accounts": "Client secret {client_secret} is not valid for refresh token {refresh_token} "
                "(client {client_id})",
    "crm": "invalid oauth token {access_token}",
    "bookings": "Zoho-oauthtoken {access_token} is not allowed to change this appointment",
}
ENDLESS_FIRST_ID = 4876876900000000001      # apart from the world's ids (4876876000000100001…)


@dataclasses.dataclass
class Fault:
    path: str
    kind: str
    left: int | None                # None: until cleared
    params: dict
    closing: threading.Event        # set when the sandbox stops: waits and streams end
    state: dict = dataclasses.field(default_factory=dict)      # paging kinds remember pages
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class Faults:
    """The armed faults of one sandbox, and the event that ends their waits when it stops."""

    def __init__(self):
        self._lock = threading.Lock()
        self._armed: list[Fault] = []
        self.closing = threading.Event()

    def arm(self, path_contains: str, kind: str, count: int | None, params: dict) -> None:
        spec = KINDS.get(kind)
        if spec is None:
            raise ValueError(f"unknown fault {kind!r}: {' | '.join(KINDS)}")
        if count is not None and count < 1:
            raise ValueError(f"count {count!r}: a positive number, or None for until cleared")
        given = {k: v for k, v in params.items() if v is not None}
        unknown = sorted(set(given) - set(spec.params))
        if unknown:
            raise ValueError(f"fault {kind!r} takes {', '.join(spec.params) or 'no parameters'}; "
                             f"not {', '.join(unknown)}")
        values = {**spec.params, **given}
        missing = [k for k, v in values.items() if v is REQUIRED]
        if missing:
            raise ValueError(f"fault {kind!r} needs {', '.join(missing)}")
        _check(kind, values)
        with self._lock:
            self._armed.append(Fault(str(path_contains), kind, count, values, self.closing))

    def take(self, endpoint: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._armed:
                if fault.path in path and (not KINDS[fault.kind].lists_only or endpoint in LISTS):
                    if fault.left is not None:
                        fault.left -= 1
                        if fault.left == 0:
                            self._armed.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def armed(self) -> list[dict]:
        with self._lock:
            return [{"path": f.path, "kind": f.kind, "left": f.left, "params": dict(f.params)}
                    for f in self._armed]


def _check(kind: str, values: dict) -> None:
    status = values.get("status")
    if status is not None and not (isinstance(status, int) and 100 <= status <= 599):
        raise ValueError(f"status {status!r}: an HTTP status code")
    if kind == "redirect" and status not in (301, 302, 303, 307, 308):
        raise ValueError(f"redirect status {status!r}: 301 | 302 | 303 | 307 | 308")
    if kind == "oversize" and not (isinstance(values["size"], int)
                                   and values["size"] >= len(_PAD_HEAD + _PAD_TAIL)):
        raise ValueError(f"size {values['size']!r}: at least {len(_PAD_HEAD + _PAD_TAIL)} bytes")
    for name in ("interval", "stall_seconds", "keep", "keep_bytes"):
        value = values.get(name)
        if value is not None and not (isinstance(value, (int, float)) and value >= 0):
            raise ValueError(f"{name} {value!r}: a number, zero or more")
    if kind == "junk_items" and not isinstance(values["items"], list):
        raise ValueError("items: a list of JSON values")


def before(fault: Fault, sandbox, request) -> Reply | None:
    """The fault's reply in place of the normal one, ``DROP``, or None: answer normally."""
    make = KINDS[fault.kind].before
    return make(fault, sandbox, request) if make else None


def after(fault: Fault, sandbox, request, reply: Reply) -> Reply:
    """The normal reply as the fault changes it."""
    change = KINDS[fault.kind].after
    return change(fault, sandbox, request, reply) if change else reply


# -- transport ----------------------------------------------------------------------------------

def _too_many(fault, sandbox, request):
    retry_after = fault.params["retry_after"]
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return crm.error(429, "TOO_MANY_REQUESTS", "Too many requests", headers=headers)


def _internal(fault, sandbox, request):
    return crm.error(500, "INTERNAL_ERROR", "Internal server error occurred.")


def _stall(fault, sandbox, request):
    fault.closing.wait(fault.params["stall_seconds"])
    return None


def _drop(fault, sandbox, request):
    return DROP


def _redirect(fault, sandbox, request):
    location = fault.params["location"]
    if location is None:
        query = urlencode(request.query)
        location = sandbox.catcher.url + request.path + (f"?{query}" if query else "")
    return Reply(fault.params["status"], "<html><body>Moved</body></html>",
                 content_type="text/html;charset=UTF-8", headers={"Location": location})


def _trickle(fault, sandbox, request, reply):
    payload, interval = reply.encode(), fault.params["interval"]

    def one_byte_at_a_time():
        for index in range(len(payload)):
            if fault.closing.wait(interval):    # the sandbox is stopping: end the reply short
                return
            yield payload[index:index + 1]

    return Reply(reply.status, content_type=reply.content_type, headers=reply.headers,
                 stream=one_byte_at_a_time(), length=len(payload))


_PAD_HEAD, _PAD_TAIL, _BLOCK = b'{"padding":"', b'"}', 1 << 16


def _oversize(fault, sandbox, request):
    size = fault.params["size"]

    def padding():
        yield _PAD_HEAD
        block, left = b"x" * _BLOCK, size - len(_PAD_HEAD) - len(_PAD_TAIL)
        while left > 0 and not fault.closing.is_set():
            yield block if left >= _BLOCK else block[:left]
            left -= _BLOCK
        yield _PAD_TAIL

    return Reply(200, stream=padding(),
                 length=size if fault.params["content_length"] else None)


# -- bodies that are not what the documents say ---------------------------------------------------

def _html(fault, sandbox, request):
    status, body = fault.params["status"], fault.params["body"]
    if body is None and status == 200:
        body = SIGN_IN_PAGE
    elif body is None:
        try:
            title = f"{status} {http.HTTPStatus(status).phrase}"
        except ValueError:                  # a code Python has no name for
            title = f"{status} Error"
        body = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}"
                f"</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
    return Reply(status, body, content_type="text/html;charset=UTF-8")


def _text(fault, sandbox, request):
    return Reply(fault.params["status"], fault.params["body"], content_type="text/plain")


def _empty(fault, sandbox, request):
    return Reply(fault.params["status"], b"")


def _truncated(fault, sandbox, request, reply):
    payload = reply.encode()
    keep = fault.params["keep_bytes"]
    return Reply(reply.status, payload[:len(payload) // 2 if keep is None else int(keep)],
                 content_type=reply.content_type, headers=reply.headers)


def _no_envelope(fault, sandbox, request, reply):
    body = _json_of(reply)
    inner = body.get("response") if isinstance(body, dict) else None
    return Reply(reply.status, inner if isinstance(inner, dict) else {}, headers=reply.headers)


def _refuse(fault, sandbox, request):
    api = _api(request.path)
    message = fault.params.get("message", ECHO[api])        # echo: the secrets, by default
    presented = {"client_id": request.param("client_id"),
                 "client_secret": request.param("client_secret"),
                 "refresh_token": request.param("refresh_token"),
                 "access_token": request.token or request.headers.get("Authorization")}
    for name, value in presented.items():
        message = message.replace("{" + name + "}", value or "")
    status, code = fault.params.get("status"), fault.params.get("code")
    if api == "accounts":
        return Reply(status or 200, {"error": code or "invalid_client",
                                     "error_description": message})
    if api == "bookings":
        # Bookings' own refusal builder (package-private): the same shape as a real refusal.
        reply = bookings.refused(message)
        reply.status = status or 200
        return reply
    return crm.error(status or 401, code or "INVALID_TOKEN", message)


def _api(path: str) -> str:
    if path.startswith("/oauth/"):
        return "accounts"
    return "bookings" if path.startswith("/bookings/") else "crm"


# -- lists: paging that lies ------------------------------------------------------------------

def _page_repeat(fault, sandbox, request, reply):
    with fault.lock:
        captured = fault.state.get("page")
        if captured is None:
            page = _page(request, reply)
            if page is None:
                return reply                    # nothing to repeat yet
            page["info"]["more_records"] = True
            captured = fault.state["page"] = json.dumps(page).encode()
    return Reply(200, captured)


def _token_repeat(fault, sandbox, request, reply):
    page = _page(request, reply)
    if page is None:
        return reply
    with fault.lock:
        token = fault.state.get("token")
        if token is None:
            fault.state["token"] = page["info"].get("next_page_token")
            return reply
    page["info"].update(more_records=True, next_page_token=token)
    return Reply(200, page)


def _page_short(fault, sandbox, request, reply):
    page = _page(request, reply)
    if page is None:
        return reply
    page["data"] = page["data"][:int(fault.params["keep"])]
    page["info"].update(count=len(page["data"]), more_records=True)
    return Reply(200, page)


def _junk_items(fault, sandbox, request, reply):
    page = _page(request, reply)
    if page is None:
        return reply
    page["data"] = list(fault.params["items"]) + page["data"]
    page["info"]["count"] = len(page["data"])
    return Reply(200, page)


def _page_endless(fault, sandbox, request):
    try:
        per_page = min(max(int(request.query.get("per_page", 200)), 1), 200)
    except ValueError:
        per_page = 200
    with fault.lock:
        first = fault.state.get("served", 0)
        page = fault.state.get("page", 0) + 1
        fault.state.update(served=first + per_page, page=page)
    now = second(sandbox.clock.now())
    numbers = range(first, first + per_page)
    if request.endpoint == "crm.deleted":
        owner = {"name": OWNER["name"], "id": OWNER["id"]}
        rows = [{"id": str(ENDLESS_FIRST_ID + n), "display_name": f"Synthetic meeting {n}",
                 "type": "recycle", "deleted_by": owner, "created_by": owner,
                 "deleted_time": wire.crm_datetime(now, sandbox.crm_time_zone)} for n in numbers]
    else:
        fields = [f.strip() for f in (request.query.get("fields") or "").split(",") if f.strip()]
        rows = [wire.render_record(_synthetic_meeting(sandbox.world, n, now), fields or None,
                                    sandbox.crm_time_zone) for n in numbers]
    # A page token like Zoho's (40 hex digits), the same for the same page: deterministic.
    token = hashlib.sha1(f"{fault.path}|{fault.kind}|{page + 1}".encode()).hexdigest()
    return Reply(200, {"data": rows, "info": _info(request, len(rows), True, token, page)})


def _synthetic_meeting(world, n: int, now: dt.datetime) -> dict:
    start = now + dt.timedelta(days=1, minutes=30 * n)
    return {"id": str(ENDLESS_FIRST_ID + n), "Event_Title": f"Synthetic meeting {n}",
            "Start_DateTime": start, "End_DateTime": start + dt.timedelta(minutes=30),
            "Created_Time": now, "Modified_Time": now, "Owner": dict(OWNER),
            world.status_field: "Scheduled", world.booking_id_field: f"#SYN-{n:05d}"}


def _json_of(reply: Reply):
    try:
        return json.loads(reply.encode() or b"null")
    except ValueError:
        return None


def _page(request, reply: Reply) -> dict | None:
    """A 200 list page ``{"data": [...], "info": {...}}`` decoded afresh, a 204 ("nothing") as
    the empty page it could have been, or None for any other reply (errors pass unchanged)."""
    if reply.status == 204:
        return {"data": [], "info": _info(request, 0, False, None, None)}
    body = _json_of(reply) if reply.status == 200 else None
    if isinstance(body, dict) and isinstance(body.get("data"), list) \
            and isinstance(body.get("info"), dict):
        return body
    return None


def _info(request, count: int, more: bool, token: str | None, page: int | None) -> dict:
    query = request.query
    try:
        per_page, page = int(query.get("per_page", 200)), page or int(query.get("page", 1))
    except ValueError:
        per_page, page = 200, page or 1
    info = {"per_page": per_page, "count": count, "page": page, "more_records": more,
            "next_page_token": token, "previous_page_token": None, "page_token_expiry": None,
            "call": False, "email": False}
    if request.endpoint == "crm.list":
        info.update(sort_by=query.get("sort_by", "id"), sort_order=query.get("sort_order", "desc"))
    return info


@dataclasses.dataclass(frozen=True)
class Kind:
    params: dict
    before: object = None           # (fault, sandbox, request) -> Reply | DROP | None
    after: object = None            # (fault, sandbox, request, reply) -> Reply
    lists_only: bool = False


KINDS = {
    "429": Kind({"retry_after": None}, before=_too_many),
    "500": Kind({}, before=_internal),
    "stall": Kind({"stall_seconds": 30.0}, before=_stall),
    "drop": Kind({}, before=_drop),
    "redirect": Kind({"status": 302, "location": None}, before=_redirect),
    "trickle": Kind({"interval": 1.0}, after=_trickle),
    "oversize": Kind({"size": 200_000_000, "content_length": True}, before=_oversize),
    "html": Kind({"status": 200, "body": None}, before=_html),
    "text": Kind({"status": 200, "body": ENVOY_TEXT}, before=_text),
    "truncated": Kind({"keep_bytes": None}, after=_truncated),
    "no_envelope": Kind({}, after=_no_envelope),
    "empty": Kind({"status": 200}, before=_empty),
    "echo": Kind({"status": None, "code": None}, before=_refuse),
    "refuse": Kind({"message": REQUIRED, "status": None, "code": None}, before=_refuse),
    "page_repeat": Kind({}, after=_page_repeat, lists_only=True),
    "token_repeat": Kind({}, after=_token_repeat, lists_only=True),
    "page_short": Kind({"keep": 0}, after=_page_short, lists_only=True),
    "page_endless": Kind({}, before=_page_endless, lists_only=True),
    "junk_items": Kind({"items": [None, "x", 42, []]}, after=_junk_items, lists_only=True),
}
