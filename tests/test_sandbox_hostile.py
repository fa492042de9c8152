"""The sandbox as a hostile Zoho, proven by what a client receives over real HTTP.

Each fault kind of ``sandbox/faults.py`` (redirects to the catcher, lying and endless paging,
trickled and oversized replies, HTML / text / truncated / empty bodies, echoed secrets, refusals
with control characters), raw CRM values and clones, a sandbox clock far from the real one, the
request log of it all, and the ``/_sandbox`` verbs that reach it from another process. Clients
here are ``requests``, ``http.client`` and raw sockets — never the daemon's own Zoho client.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import json
import time
import tracemalloc
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from bookings_sync.sandbox import FrozenClock, Sandbox
from bookings_sync.sandbox.faults import ENVOY_TEXT, KINDS
from e2e import FROZEN_NOW

UTC = dt.timezone.utc
NOW = FROZEN_NOW                               # the frozen clock; the CRM user is in Berlin
ERROR_KEYS = {"code", "details", "message", "status"}
FIELDS = "Start_DateTime,End_DateTime,Modified_Time,BookingId"


@pytest.fixture
def sb(frozen_sb):
    return frozen_sb


@pytest.fixture
def web():
    session = requests.Session()
    session.trust_env = False                  # never a proxy for 127.0.0.1
    yield session
    session.close()


@pytest.fixture
def token(sb, web):
    return grant(sb, web).json()["access_token"]


def grant(sb, web, **kwargs) -> requests.Response:
    return web.post(f"{sb.url}/oauth/v2/token", timeout=5,
                    data={"grant_type": "refresh_token", **sb.credentials}, **kwargs)


def crm_get(sb, web, token, path="Events", since=None, **params) -> requests.Response:
    if path == "Events":
        params.setdefault("fields", FIELDS)
    headers = {"Authorization": f"Zoho-oauthtoken {token}"}
    if since:
        headers["If-Modified-Since"] = since
    return web.get(f"{sb.url}/crm/v8/{path}", params=params, headers=headers, timeout=5)


def appointment(sb, web, token, booking_id) -> requests.Response:
    return web.get(f"{sb.url}/bookings/v1/json/getappointment", params={"booking_id": booking_id},
                   headers={"Authorization": f"Zoho-oauthtoken {token}"}, timeout=5)


def control(sb, web, verb, **body) -> tuple[int, object]:
    reply = web.post(f"{sb.url}/_sandbox/{verb}", json=body, timeout=5)
    return reply.status_code, reply.json()


def connection(sb) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(sb.url.removeprefix("http://"), timeout=10)


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2031, 3, day, hour, minute, tzinfo=UTC)


def http_date(reply_headers) -> dt.datetime:
    return email.utils.parsedate_to_datetime(reply_headers["Date"])


# -- 1. redirects and the catcher ---------------------------------------------------------------

@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_token_endpoint_redirect_reaches_the_catcher_only_when_followed(sb, web, status):
    secret = sb.credentials["client_secret"]
    sb.inject("/oauth/v2/token", "redirect", status=status)
    reply = grant(sb, web, allow_redirects=False)
    assert reply.status_code == status
    assert reply.headers["Location"] == f"{sb.catcher.url}/oauth/v2/token"
    assert sb.catcher.requests == []                     # not followed: nothing went there
    # A client that follows: requests re-posts the form (secrets and all) on 307/308 only.
    sb.inject("/oauth/v2/token", "redirect", status=status)
    followed = grant(sb, web)
    assert (followed.status_code, followed.json()) == (200, {"caught": True})
    [caught] = sb.catcher.requests
    assert caught["target"] == "/oauth/v2/token"
    assert caught["method"] == ("POST" if status in (307, 308) else "GET")
    assert (secret.encode() in caught["body"]) == (status in (307, 308))
    assert "access_token" in grant(sb, web).json()        # one request per count: over


def test_a_redirect_keeps_the_query_so_query_string_secrets_point_at_the_catcher(sb, web):
    sb.inject("/oauth/", "redirect")
    reply = web.post(f"{sb.url}/oauth/v2/token", allow_redirects=False, timeout=5,
                     params={"grant_type": "refresh_token", **sb.credentials})
    location = urlsplit(reply.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == sb.catcher.url
    assert parse_qs(location.query)["client_secret"] == [sb.credentials["client_secret"]]
    assert parse_qs(location.query)["refresh_token"] == [sb.credentials["refresh_token"]]


def test_an_api_redirect_and_what_reaches_the_catcher_with_and_without_the_token(sb, web, token):
    sb.inject("/crm/v8/Events", "redirect", status=308, count=2)
    followed = crm_get(sb, web, token, fields="id")        # requests follows to another port
    assert followed.json() == {"caught": True}
    [by_requests] = sb.catcher.requests
    assert by_requests["target"] == "/crm/v8/Events?fields=id"
    assert "Authorization" not in dict(by_requests["headers"])   # requests drops it cross-port
    # A naive client that re-sends its headers to the Location: the catcher shows the token.
    conn = connection(sb)
    conn.request("GET", "/crm/v8/Events?fields=id",
                 headers={"Authorization": f"Zoho-oauthtoken {token}"})
    moved = conn.getresponse()
    moved.read()
    location = urlsplit(moved.getheader("Location"))
    other = http.client.HTTPConnection(location.netloc, timeout=5)
    other.request("GET", location.path + "?" + location.query,
                  headers={"Authorization": f"Zoho-oauthtoken {token}"})
    assert other.getresponse().status == 200
    assert (sb.catcher.requests[1]["method"], dict(sb.catcher.requests[1]["headers"])[
        "Authorization"]) == ("GET", f"Zoho-oauthtoken {token}")
    sb.catcher.clear()
    assert sb.catcher.requests == []


def test_a_redirect_to_a_given_location(sb, web):
    sb.inject("/oauth/", "redirect", status=301, location="https://accounts.zoho.invalid/x")
    reply = grant(sb, web, allow_redirects=False)
    assert (reply.status_code, reply.headers["Location"]) == (301, "https://accounts.zoho.invalid/x")


# -- 2. lying and endless paging ------------------------------------------------------------------

def test_page_repeat_serves_one_page_forever_until_cleared(sb, web, token):
    sb.seed(3)
    sb.inject("/crm/v8/Events", "page_repeat", count=None)
    pages = [crm_get(sb, web, token, per_page=2, page=n) for n in (1, 2, 3)]
    first = pages[0].json()
    assert len(first["data"]) == 2 and first["info"]["more_records"] is True
    assert all(p.content == pages[0].content for p in pages)
    by_token = crm_get(sb, web, token, per_page=2, page_token=first["info"]["next_page_token"])
    assert by_token.content == pages[0].content
    sb.clear_faults()
    last = crm_get(sb, web, token, per_page=2, page=2).json()
    assert len(last["data"]) == 1 and last["info"]["more_records"] is False


def test_token_repeat_hands_page_ones_token_out_again_on_page_two(sb, web, token):
    sb.seed(5)
    sb.inject("/crm/v8/Events", "token_repeat", count=3)
    first = crm_get(sb, web, token, per_page=2).json()
    repeated = first["info"]["next_page_token"]
    second = crm_get(sb, web, token, per_page=2, page_token=repeated).json()
    third = crm_get(sb, web, token, per_page=2, page_token=repeated).json()
    assert second["info"]["next_page_token"] == third["info"]["next_page_token"] == repeated
    assert second["info"]["more_records"] is True and second["data"] == third["data"]
    assert {r["id"] for r in first["data"]}.isdisjoint(r["id"] for r in second["data"])
    honest = crm_get(sb, web, token, per_page=2, page_token=repeated).json()     # count used
    assert honest["data"] == second["data"] and honest["info"]["next_page_token"] != repeated


def test_page_short_claims_more_records_on_a_short_or_empty_page(sb, web, token):
    sb.seed(3)
    sb.inject("/crm/v8/Events", "page_short")
    empty = crm_get(sb, web, token, per_page=2).json()
    assert empty["data"] == [] and empty["info"]["more_records"] is True
    sb.inject("/crm/v8/Events", "page_short", keep=1)
    short = crm_get(sb, web, token, per_page=2).json()
    assert len(short["data"]) == 1 and short["info"]["more_records"] is True
    later = (NOW + dt.timedelta(days=1)).isoformat()
    assert crm_get(sb, web, token, since=later).status_code == 204        # Zoho's "nothing"
    sb.inject("/crm/v8/Events", "page_short")
    lie = crm_get(sb, web, token, since=later)
    assert lie.status_code == 200 and lie.json()["data"] == []
    assert lie.json()["info"]["more_records"] is True


@pytest.mark.parametrize("path", ["Events", "Events/deleted"])
def test_page_endless_never_runs_out_of_fresh_records(sb, web, token, path):
    sb.inject(f"/crm/v8/{path}", "page_endless", count=None)
    seen, tokens, page_token, first = set(), set(), None, None
    for number in range(1, 6):
        params = {"per_page": 200, **({"page_token": page_token} if page_token else {})}
        reply = crm_get(sb, web, token, path, **params)
        body = reply.json()
        first = first or reply.content
        assert body["info"]["more_records"] is True and body["info"]["page"] == number
        ids = [r["id"] for r in body["data"]]
        assert len(ids) == 200 and seen.isdisjoint(ids) and all(i.isdigit() for i in ids)
        seen.update(ids)
        page_token = body["info"]["next_page_token"]
        tokens.add(page_token)
    assert len(tokens) == 5
    record = body["data"][0]
    if path == "Events":
        assert set(record) == {"id", *FIELDS.split(",")}
        assert record["Modified_Time"] == "2031-03-03T10:00:00+01:00"     # now, Berlin offset
    else:
        assert set(record) == {"id", "display_name", "type", "deleted_by", "created_by",
                               "deleted_time"}
    sb.clear_faults()
    assert crm_get(sb, web, token, path).status_code == 204                # the real, empty CRM
    sb.inject(f"/crm/v8/{path}", "page_endless")
    assert crm_get(sb, web, token, path, per_page=200).content == first     # deterministic


@pytest.mark.parametrize("path", ["Events", "Events/deleted"])
def test_junk_items_put_non_objects_into_a_pages_data(sb, web, token, path):
    ids = [meeting_id for meeting_id, _ in sb.seed(2)]
    if path == "Events/deleted":
        for meeting_id in ids:
            sb.crm_delete(meeting_id)
    sb.inject(f"/crm/v8/{path}", "junk_items")
    data = crm_get(sb, web, token, path).json()["data"]
    assert data[:4] == [None, "x", 42, []]
    assert sorted(r["id"] for r in data[4:]) == sorted(ids)
    sb.inject(f"/crm/v8/{path}", "junk_items", items=["\x1b[2J", {"id": None}])
    later = (NOW + dt.timedelta(days=1)).isoformat()
    only_junk = crm_get(sb, web, token, path, since=later)                 # would be a 204
    assert only_junk.status_code == 200
    assert only_junk.json()["data"] == ["\x1b[2J", {"id": None}]


def test_list_faults_pass_other_endpoints_by_without_being_used_up(sb, web, token):
    [(meeting_id, _)] = sb.seed(1)
    sb.inject("/crm/v8/Events", "junk_items")
    single = crm_get(sb, web, token, f"Events/{meeting_id}", fields="id").json()
    assert single == {"data": [{"id": meeting_id}]}
    assert crm_get(sb, web, token).json()["data"][0] is None


# -- 3. trickled and oversized replies ------------------------------------------------------------

def test_trickle_sends_status_and_headers_at_once_then_one_byte_per_interval(sb):
    sb.inject("/oauth/v2/token", "trickle", interval=0.1)
    expected = b'{"error": "invalid_client"}'
    conn = connection(sb)
    started = time.monotonic()
    conn.request("POST", "/oauth/v2/token?grant_type=refresh_token&client_id=wrong")
    response = conn.getresponse()
    headers_after = time.monotonic() - started
    assert response.status == 200 and int(response.getheader("Content-Length")) == len(expected)
    assert response.getheader("Connection") == "close"
    assert headers_after < 0.08                     # before the first byte is due
    body, arrivals = b"", []
    for _ in range(4):
        body += response.read(1)
        arrivals.append(time.monotonic() - started)
    conn.close()
    assert body == expected[:4]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert arrivals[0] >= 0.09 and min(gaps) >= 0.09      # one byte per interval, not a burst


def test_a_per_read_timeout_never_fires_on_a_trickle(sb, web):
    sb.inject("/oauth/v2/token", "trickle", interval=0.05)
    started = time.monotonic()
    reply = web.post(f"{sb.url}/oauth/v2/token", params={"grant_type": "refresh_token"},
                     timeout=0.5)                   # 0.5 s per read, never reached
    assert reply.json() == {"error": "invalid_client"}
    assert time.monotonic() - started > 1.2          # 27 bytes × 50 ms: only a deadline helps


def test_stopping_the_sandbox_ends_a_trickle_at_once(clock):
    sb = Sandbox(clock=clock).start()
    sb.inject("/oauth/", "trickle", interval=30)
    conn = connection(sb)
    conn.request("POST", "/oauth/v2/token")
    response = conn.getresponse()
    started = time.monotonic()
    sb.stop()
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("content_length", [True, False])
def test_oversize_streams_200_mb_that_neither_side_holds_in_memory(sb, content_length):
    size = 200_000_000
    sb.inject("getappointment", "oversize", size=size, content_length=content_length)
    tracemalloc.start()
    try:
        conn = connection(sb)
        conn.request("GET", "/bookings/v1/json/getappointment?booking_id=x")
        response = conn.getresponse()
        head = response.read(32)
        total, tail = len(head), b""
        while chunk := response.read(1 << 16):
            total, tail = total + len(chunk), (tail + chunk)[-8:]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status == 200 and total == size
    if content_length:
        assert response.getheader("Content-Length") == str(size)
    else:
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert response.getheader("Content-Length") is None
    assert head == b'{"padding":"' + b"x" * 20 and tail.endswith(b'xxx"}')
    assert peak < 8 * 2 ** 20                        # 200 MB passed through less than 8 MB


def test_a_small_oversize_body_is_exact_json(sb, web):
    sb.inject("getappointment", "oversize", size=100, content_length=False)
    reply = web.get(f"{sb.url}/bookings/v1/json/getappointment", timeout=5)
    assert len(reply.content) == 100 and reply.json() == {"padding": "x" * 86}


# -- 4. records from a hostile CRM ---------------------------------------------------------------

@pytest.mark.parametrize("field,value", [
    ("Start_DateTime", "0206-03-01T10:00:00+00:00"),
    ("Start_DateTime", "9999-12-31T23:59:59+00:00"),
    ("Start_DateTime", None),
    ("Start_DateTime", "２０２７-03-01T10:00:00+00:00"),       # full-width digits
    ("End_DateTime", {"nested": [1, 2.5, True]}),
    ("id", "not-a-digit-string"),
    ("BookingId", "   "),
    ("BookingId", 4242),
    ("Event_Title", "\x1b]0;owned\x07Meeting\r\nX-Injected: yes"),
])
def test_raw_values_reach_the_client_verbatim_and_count_as_an_edit(sb, web, token, clock,
                                                                    field, value):
    meeting_id, _ = sb.book(at(5, 10))
    clock.advance(30)
    sb.crm_raw(meeting_id, **{field: value})
    listed = crm_get(sb, web, token, fields=f"{field},Modified_Time")
    [record] = listed.json()["data"]
    assert record[field] == value
    assert record["Modified_Time"] == "2031-03-03T10:00:30+01:00"      # an edit, now
    fetched = crm_get(sb, web, token, f"Events/{meeting_id}", fields=field).json()["data"][0]
    assert fetched[field] == value
    if isinstance(value, str) and "\x1b" in value:
        assert b"\\u001b" in listed.content and b"\x1b" not in listed.content   # JSON-escaped


def test_a_later_write_replaces_a_raw_value(sb, web, token):
    meeting_id, booking_id = sb.book(at(5, 10))
    sb.crm_raw(meeting_id, Start_DateTime="0206-03-01T10:00:00+00:00", BookingId="   ")
    sb.bookings_reschedule(booking_id, at(6, 11))          # the integration writes the start
    [record] = crm_get(sb, web, token).json()["data"]
    assert record["Start_DateTime"] == "2031-03-06T12:00:00+01:00"
    assert record["BookingId"] == "   "                     # not written: still hostile


def test_a_far_future_modified_time_sorts_last_and_hides_later_edits_from_its_cursor(
        sb, web, token, clock):
    (stamped, _), (other, _) = sb.seed(2)
    sb.crm_raw(stamped, Modified_Time=dt.datetime(2099, 1, 1, tzinfo=UTC))
    body = crm_get(sb, web, token, sort_by="Modified_Time", sort_order="asc").json()
    assert [r["id"] for r in body["data"]] == [other, stamped]
    cursor = body["data"][-1]["Modified_Time"]
    assert cursor == "2099-01-01T01:00:00+01:00"
    clock.advance(60)
    sb.crm_move(other, at(9, 9))                            # a real edit, after the stamp
    assert crm_get(sb, web, token, since=cursor).status_code == 204       # invisible past 2099
    after_now = crm_get(sb, web, token, since=NOW.isoformat(), sort_by="Modified_Time",
                        sort_order="asc").json()
    assert [r["id"] for r in after_now["data"]] == [other, stamped]


def test_raw_values_must_be_json_and_datetimes_aware(sb):
    meeting_id, _ = sb.book(at(5, 10))
    with pytest.raises(ValueError, match="JSON"):
        sb.crm_raw(meeting_id, Location={1, 2})
    with pytest.raises(ValueError, match="aware"):
        sb.crm_raw(meeting_id, Modified_Time=dt.datetime(2099, 1, 1))


def test_refuse_puts_control_characters_into_a_bookings_refusal(sb, web, token):
    _, booking_id = sb.book(at(5, 10))
    message = "\x1b[2J\x1b[H\x07Slot taken\r\nX-Injected: 1"
    sb.inject("rescheduleappointment", "refuse", message=message)
    reply = web.post(f"{sb.url}/bookings/v1/json/rescheduleappointment", timeout=5,
                     data={"booking_id": booking_id, "start_time": "06-Mar-2031 10:00:00"},
                     headers={"Authorization": f"Zoho-oauthtoken {token}"})
    assert reply.status_code == 200
    assert reply.json() == {"response": {"returnvalue": {"status": "failure", "message": message},
                                         "status": "success"}}
    assert sb.appointment(booking_id)["start"] == at(5, 10)         # refused: nothing moved


# -- 5. CRM Clone --------------------------------------------------------------------------------

def test_crm_clone_puts_the_booking_id_on_a_second_meeting(sb, web, token, clock):
    meeting_id, booking_id = sb.book(at(5, 10))
    sb.crm_edit(meeting_id, Custom_Note="copied too")
    clock.advance(120)
    clone_id = sb.crm_clone(meeting_id)
    fields = f"{FIELDS},Created_Time,Custom_Note,Meeting_Status,Event_Title"
    records = {r["id"]: r for r in crm_get(sb, web, token, fields=fields).json()["data"]}
    assert set(records) == {meeting_id, clone_id} and int(clone_id) > int(meeting_id)
    original, clone = records[meeting_id], records[clone_id]
    assert clone["BookingId"] == original["BookingId"] == booking_id
    for name in ("Start_DateTime", "End_DateTime", "Custom_Note", "Meeting_Status",
                 "Event_Title"):
        assert clone[name] == original[name]
    assert clone["Created_Time"] == clone["Modified_Time"] == "2031-03-03T10:02:00+01:00"
    assert original["Created_Time"] == "2031-03-03T10:00:00+01:00"
    assert sb.meeting_for_booking(booking_id) == meeting_id          # Bookings was not told


# -- 6. replies that are not what the documents say ------------------------------------------------

def _expected_bad(kind: str, normal: bytes) -> tuple[int, str, bytes | None]:
    return {
        "html": (200, "text/html", None),
        "text": (200, "text/plain", ENVOY_TEXT.encode()),
        "truncated": (200, "application/json", normal[:len(normal) // 2]),
        "no_envelope": (200, "application/json",
                        json.dumps(json.loads(normal)["response"]).encode()),
        "empty": (200, "application/json", b""),
    }[kind]


@pytest.mark.parametrize("kind", ["html", "text", "truncated", "no_envelope", "empty"])
def test_bookings_bodies_that_are_not_the_documented_json(sb, web, token, kind):
    _, booking_id = sb.book(at(5, 10))
    normal = appointment(sb, web, token, booking_id).content
    status, ctype, body = _expected_bad(kind, normal)
    sb.inject("getappointment", kind, count=2)
    for _ in range(2):
        reply = appointment(sb, web, token, booking_id)
        assert reply.status_code == status and reply.headers["Content-Type"].startswith(ctype)
        assert int(reply.headers["Content-Length"]) == len(reply.content)
        if body is not None:
            assert reply.content == body
        if kind != "no_envelope":
            with pytest.raises(ValueError):
                json.loads(reply.content)
    assert appointment(sb, web, token, booking_id).content == normal      # count used up
    if kind == "html":
        assert reply.text.startswith("<!DOCTYPE html>") and "Sign in" in reply.text


def test_a_proxys_502_html_page(sb, web, token):
    sb.inject("rescheduleappointment", "html", status=502)
    reply = web.post(f"{sb.url}/bookings/v1/json/rescheduleappointment", timeout=5,
                     data={"booking_id": "#AN-00001"},
                     headers={"Authorization": f"Zoho-oauthtoken {token}"})
    assert reply.status_code == 502 and reply.headers["Content-Type"].startswith("text/html")
    assert "<title>502 Bad Gateway</title>" in reply.text and "nginx" in reply.text


# -- 7. echoed secrets ---------------------------------------------------------------------------

def test_echo_puts_the_presented_secrets_into_each_apis_own_error(sb, web):
    creds = sb.credentials
    sb.inject("/oauth/v2/token", "echo")
    refused = grant(sb, web)
    body = refused.json()
    assert refused.status_code == 200 and body["error"] == "invalid_client"
    assert creds["client_secret"] in body["error_description"]
    assert creds["refresh_token"] in body["error_description"]
    token = grant(sb, web).json()["access_token"]
    sb.inject("/crm/", "echo")
    crm = crm_get(sb, web, token)
    assert crm.status_code == 401 and set(crm.json()) == ERROR_KEYS
    assert crm.json()["code"] == "INVALID_TOKEN" and token in crm.json()["message"]
    sb.inject("/bookings/", "echo")
    bookings = appointment(sb, web, token, "#AN-00001").json()["response"]
    assert bookings["returnvalue"]["status"] == "failure"
    assert token in bookings["returnvalue"]["message"]
    dump = repr(sb.request_log)
    for secret in (creds["client_secret"], creds["refresh_token"], token):
        assert secret not in dump
    assert [e.get("fault") for e in sb.request_log] == ["echo", None, "echo", "echo"]


def test_refuse_fills_in_only_what_the_request_presented(sb, web):
    sb.inject("/oauth/", "refuse", message="secret={client_secret} token={access_token}",
              status=400, code="invalid_request")
    reply = grant(sb, web)
    assert reply.status_code == 400
    assert reply.json() == {"error": "invalid_request", "error_description":
                            f"secret={sb.credentials['client_secret']} token="}


# -- 8. a clock far from the real one --------------------------------------------------------------

def test_the_date_header_follows_a_frozen_clock_40_days_behind(web):
    behind = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(days=40)
    with Sandbox(clock=FrozenClock(behind)) as sb:
        sb.inject("/bookings/", "html", status=502)
        for reply in (web.get(f"{sb.url}/crm/v8/Events", timeout=5),          # a 401
                      web.get(f"{sb.url}/bookings/v1/json/getappointment", timeout=5),
                      web.get(f"{sb.catcher.url}/anything", timeout=5)):
            assert http_date(reply.headers) == behind


def test_a_real_clock_set_40_days_back_keeps_ticking_from_there(web):
    with Sandbox() as sb:
        target = dt.datetime.now(UTC) - dt.timedelta(days=40)
        status, body = control(sb, web, "clock", set=target.isoformat())
        assert status == 200
        time.sleep(1.1)
        dated = http_date(web.get(f"{sb.url}/crm/v8/Events", timeout=5).headers)
        assert target < dated < target + dt.timedelta(seconds=5)


# -- 9. the request log, faults armed and cleared, the control surface -----------------------------

def test_faulted_requests_are_logged_with_their_fault_and_without_secrets(sb, web, token):
    sb.inject("/oauth/", "redirect", status=307)
    web.post(f"{sb.url}/oauth/v2/token", allow_redirects=False, timeout=5,
             params={"grant_type": "refresh_token", **sb.credentials})
    sb.inject("/crm/", "page_endless")
    crm_get(sb, web, token)
    sb.inject("/bookings/", "trickle", interval=0.001)
    appointment(sb, web, token, "#AN-00001")
    sb.inject("/bookings/", "drop")
    with pytest.raises(requests.ConnectionError):
        appointment(sb, web, token, "#AN-00001")
    sb.inject("/crm/", "echo")
    crm_get(sb, web, token)
    assert [(e["endpoint"], e.get("fault"), e["status"]) for e in sb.request_log] == [
        ("accounts.token", None, 200), ("accounts.token", "redirect", 307),
        ("crm.list", "page_endless", 200), ("bookings.getappointment", "trickle", 200),
        ("bookings.getappointment", "drop", 0), ("crm.list", "echo", 401)]
    assert sb.request_log[1]["query"]["client_secret"] == "***"
    dump = repr(sb.request_log)
    for secret in (*sb.credentials.values(), token):
        if secret != sb.credentials["client_id"]:
            assert secret not in dump


def test_clear_faults_disarms_every_kind(sb, web, token):
    for kind in KINDS:
        sb.inject("/", kind, count=None, **({"message": "m"} if kind == "refuse" else {}))
    assert [f["kind"] for f in sb.armed_faults()] == list(KINDS)
    sb.clear_faults()
    assert sb.armed_faults() == []
    assert crm_get(sb, web, token).status_code == 204
    assert "access_token" in grant(sb, web).json()


def test_bad_fault_requests_are_one_clear_error(sb):
    for args, kwargs, text in [
            (("/x", "nope"), {}, "unknown fault 'nope': 429 | 500 |"),
            (("/x", "trickle"), {"speed": 1}, "fault 'trickle' takes interval; not speed"),
            (("/x", "refuse"), {}, "fault 'refuse' needs message"),
            (("/x", "redirect"), {"status": 200}, "redirect status 200"),
            (("/x", "500", 0), {}, "count 0"),
            (("/x", "oversize"), {"size": 3}, "size 3"),
            (("/x", "junk_items"), {"items": "x"}, "items: a list")]:
        with pytest.raises(ValueError) as error:
            sb.inject(*args, **kwargs)
        assert str(error.value).startswith(text) and "\n" not in str(error.value)
    assert sb.armed_faults() == []


def test_the_control_surface_reaches_every_hostile_behaviour(sb, web, token):
    meeting_id, booking_id = sb.book(at(5, 10))
    assert control(sb, web, "inject", path="/crm/v8/Events", kind="page_endless",
                   count=None) == (200, {"ok": True})
    assert control(sb, web, "inject", path="rescheduleappointment", kind="html", status=502,
                   count=2)[0] == 200
    assert control(sb, web, "armed_faults") == (200, [
        {"path": "/crm/v8/Events", "kind": "page_endless", "left": None, "params": {}},
        {"path": "rescheduleappointment", "kind": "html", "left": 2,
         "params": {"status": 502, "body": None}}])
    assert len(crm_get(sb, web, token).json()["data"]) == 200
    status, body = control(sb, web, "inject", path="/crm/", kind="trickle", speed=1)
    assert status == 400 and body["error"] == "ValueError: fault 'trickle' takes interval; not speed"
    assert control(sb, web, "clear_faults") == (200, {"ok": True})
    assert control(sb, web, "armed_faults") == (200, [])

    assert control(sb, web, "crm_raw", meeting_id=meeting_id,
                   fields={"BookingId": 42, "Event_Title": "\x1b[31mred"},
                   instants={"Modified_Time": "2099-01-01T00:00:00+00:00"})[0] == 200
    [record] = crm_get(sb, web, token, fields="BookingId,Event_Title,Modified_Time").json()["data"]
    assert record == {"id": meeting_id, "BookingId": 42, "Event_Title": "\x1b[31mred",
                      "Modified_Time": "2099-01-01T01:00:00+01:00"}
    status, body = control(sb, web, "crm_clone", meeting_id=meeting_id)
    assert status == 200 and sb.meeting(body["meeting_id"])["BookingId"] == booking_id

    assert control(sb, web, "inject", path="/oauth/", kind="redirect", status=307)[0] == 200
    assert grant(sb, web).json() == {"caught": True}
    status, caught = control(sb, web, "catcher", clear=True)
    assert status == 200 and caught["url"] == sb.catcher.url
    [request] = caught["requests"]
    assert request["method"] == "POST" and request["target"] == "/oauth/v2/token"
    assert f"client_secret={sb.credentials['client_secret']}" in request["body"]
    assert ["Content-Type", "application/x-www-form-urlencoded"] in request["headers"]
    assert control(sb, web, "catcher")[1]["requests"] == []
