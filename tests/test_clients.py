"""The Zoho clients (``bookings_sync.zoho``) over real HTTP against the sandbox.

Every scenario asserts the outcome and the exact number of requests the sandbox received
(``sb.calls``): API calls are the customer's money, and a write sent twice is a bug. Retry waits
go through an injected ``sleep`` that records them, so backoff and ``Retry-After`` are checked
without waiting. All log output (structlog and the standard library, urllib3 at debug included)
and every exception text of this module is captured and searched for credentials.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import socket
import stat
import threading
import traceback

import pytest
import structlog

from bookings_sync.sandbox import FrozenClock, Sandbox
from bookings_sync.zoho.auth import TokenProvider
from bookings_sync.zoho.bookings import Appointment
from bookings_sync.zoho.connection import connect
from bookings_sync.zoho.crm import CrmClient
from bookings_sync.zoho.datacenters import DATA_CENTERS, data_center_of, endpoints
from bookings_sync.zoho.errors import (BookingsRefused, ZohoApiError, ZohoAuthError,
                                       ZohoPayloadError, ZohoUnreachable)
from bookings_sync.zoho.http import make_session
from bookings_sync.zoho.timefmt import format_bookings_time, parse_crm_datetime

from e2e import NOW, UTC
FIELDS = ["Event_Title", "Start_DateTime", "End_DateTime", "BookingId"]

SECRETS: set[str] = set()      # client secrets, refresh tokens, every access token issued
TEXTS: list[str] = []          # every exception text raised by a client in this module
LOG = io.StringIO()            # every log line of this module


# -- harness -----------------------------------------------------------------------------------

@contextlib.contextmanager
def sandbox(**kwargs):
    """A sandbox whose credentials and every access token it issues are registered as secrets."""
    with Sandbox(**kwargs) as sb:
        creds = sb.credentials
        SECRETS.update((creds["client_secret"], creds["refresh_token"]))
        issue = sb.world.issue_token

        def issue_and_remember():
            token, ttl = issue()
            SECRETS.add(token)
            return token, ttl
        sb.world.issue_token = issue_and_remember
        yield sb


@pytest.fixture
def sb():
    with sandbox() as sb:
        yield sb


@pytest.fixture(autouse=True)
def captured_logs():
    """Route structlog through logging, capture everything at debug, and check for secrets."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root, urllib3_log = logging.getLogger(), logging.getLogger("urllib3")
    saved = (root.handlers[:], root.level, urllib3_log.level, structlog.get_config())
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG)
    urllib3_log.setLevel(logging.DEBUG)
    # No redaction here on purpose: the clients must not emit a secret in the first place.
    structlog.configure(
        processors=[structlog.stdlib.add_log_level, structlog.processors.format_exc_info,
                    structlog.processors.KeyValueRenderer(key_order=["event"])],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger, cache_logger_on_first_use=False)
    try:
        yield stream
    finally:
        root.handlers[:], _, _, config = saved
        root.setLevel(saved[1])
        urllib3_log.setLevel(saved[2])
        structlog.configure(**config)
        LOG.write(stream.getvalue())
    assert not leaks(stream.getvalue() + "\n".join(TEXTS)), \
        "a credential (or a fragment of one) reached a log line or an exception text"


def leaks(text: str) -> list[str]:
    """Secrets of which any 20 consecutive characters occur in ``text`` (a truncated token in a
    log line is a leak too)."""
    found = []
    for secret in SECRETS:
        windows = {secret[i:i + 20] for i in range(0, max(1, len(secret) - 19))}
        if any(w in text for w in windows):
            found.append(secret)
    return found


def expect(exc_type, fn, *args, **kwargs):
    """Call ``fn``, expect ``exc_type``; remember the exception's texts for the secret check."""
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    error = info.value
    TEXTS.extend([str(error), repr(error), "".join(traceback.format_exception(error))])
    return error


class Clients:
    """One process's worth of clients, as the daemon builds them, with a fast recorded backoff."""

    def __init__(self, sb, tmp_path=None, *, read_timeout=5.0, cache=True, api_url=None,
                 refresh_token=None):
        creds = dict(sb.credentials)
        if refresh_token:
            creds["refresh_token"] = refresh_token
        self.sleeps: list[float] = []
        zoho = connect(accounts_url=sb.url, api_url=api_url or sb.url, **creds,
                       timeout=read_timeout, connect_timeout=2.0, backoff_factor=0.01,
                       backoff_max=0.05, sleep=self.sleeps.append,
                       cache_path=tmp_path / "token.json" if (cache and tmp_path) else None)
        self.session, self.tokens, self.http = zoho.session, zoho.tokens, zoho.http
        self.crm, self.bookings = zoho.crm, zoho.bookings


def walk(crm: CrmClient, since=None, **kwargs) -> dict[str, str]:
    """Every meeting id seen → its latest Modified_Time (the caller's de-duplication)."""
    latest: dict[str, str] = {}
    for page in crm.iter_modified(since, FIELDS, **kwargs):
        for record in page.records:
            previous = latest.get(record["id"])
            if previous is None or parse_crm_datetime(record["Modified_Time"]) > \
                    parse_crm_datetime(previous):
                latest[record["id"]] = record["Modified_Time"]
    return latest


def list_queries(sb) -> list[dict]:
    return [e["query"] for e in sb.request_log if e["endpoint"] == "crm.list"]


def bookings_time(days: float, tz="Asia/Kolkata") -> str:
    return format_bookings_time(NOW + dt.timedelta(days=days), tz)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- tokens ------------------------------------------------------------------------------------

def test_token_expiry_mid_run_refreshes_once_and_retries_the_call_once(tmp_path):
    clock = FrozenClock(NOW)
    with sandbox(clock=clock) as sb:
        for i in range(5):                       # five meetings in five distinct seconds
            sb.book(start=NOW + dt.timedelta(days=2, hours=i), staff_id=f"s{i}")
            clock.advance(1)
        clients = Clients(sb, tmp_path)
        expired = []

        def expire_after_first_page(endpoint, query):
            if not expired:
                expired.append(query)
                sb.expire_tokens()
        sb.on_page = expire_after_first_page
        seen = walk(clients.crm, per_page=2)
        assert len(seen) == 5
        # Keyset pages of 2 over 5 seconds: 4 pages, plus the one page answered 401 once.
        assert sb.calls["crm.list"] == 5
        assert [e["status"] for e in sb.request_log if e["endpoint"] == "crm.list"] == [
            200, 401, 200, 200, 200]
        assert sb.calls["accounts.token"] == 2 and clients.tokens.refreshes == 2
        assert clients.http.calls == {"crm": 5}


def test_the_token_is_reused_across_processes_through_a_0600_cache_file(sb, tmp_path):
    sb.seed(2)
    first = Clients(sb, tmp_path)
    walk(first.crm)
    cache = tmp_path / "token.json"
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    content = json.loads(cache.read_text())
    assert set(content) >= {"access_token", "expires_at", "fingerprint"}
    assert sb.credentials["client_secret"] not in cache.read_text()
    assert sb.credentials["refresh_token"] not in cache.read_text()

    second = Clients(sb, tmp_path)                # a second --run-once process
    assert len(walk(second.crm)) == 2
    assert second.tokens.refreshes == 0
    assert sb.calls["accounts.token"] == 1 and sb.calls["crm.list"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name != "token.json"]   # no tmp files left

    # A changed refresh token (another config) must not reuse that cache: it asks Accounts.
    other = Clients(sb, tmp_path, refresh_token="1000.another-refresh-token-0000000000")
    SECRETS.add("1000.another-refresh-token-0000000000")
    error = expect(ZohoAuthError, other.tokens.token)
    assert error.code == "invalid_code" and sb.calls["accounts.token"] == 2


def test_two_processes_hitting_an_expired_token_refresh_once_in_total(sb, tmp_path):
    sb.seed(1)
    first, second = Clients(sb, tmp_path), Clients(sb, tmp_path)
    walk(first.crm)
    walk(second.crm)                               # both hold the same cached token
    sb.expire_tokens()
    sb.reset_counters()
    walk(first.crm)                                # 401, refresh, retry; writes the new token
    walk(second.crm)                               # 401; the cache already has a fresh token
    assert sb.calls["accounts.token"] == 1 and sb.calls["crm.list"] == 4
    assert (first.tokens.refreshes, second.tokens.refreshes) == (2, 0)


def test_token_requests_carry_secrets_in_the_form_body_not_the_url(sb):
    Clients(sb).tokens.token()
    [entry] = [e for e in sb.request_log if e["endpoint"] == "accounts.token"]
    assert entry["method"] == "POST" and entry["query"] == {}
    assert set(entry["form"]) == {"grant_type", "client_id", "client_secret", "refresh_token"}


def test_invalidate_refreshes_once_however_many_threads_saw_the_stale_token(sb, tmp_path):
    sb.seed(2)
    clients = Clients(sb, tmp_path)
    stale = clients.tokens.token()
    clients.tokens.invalidate(stale)
    fresh = clients.tokens.token()
    clients.tokens.invalidate(stale)              # a slower thread, same stale token: no-op
    assert clients.tokens.token() == fresh and clients.tokens.refreshes == 2

    sb.expire_tokens()
    sb.reset_counters()
    results, errors = [], []

    def worker():
        try:
            results.append(len(walk(clients.crm)))
        except Exception as exc:          # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [2] * 8
    assert sb.calls["accounts.token"] == 1
    rejected = sum(1 for e in sb.request_log if e["status"] == 401)
    assert sb.calls["crm.list"] == 8 + rejected and 1 <= rejected <= 8


def test_invalid_client_and_invalid_code_say_what_to_check(sb):
    creds = sb.credentials
    SECRETS.update({"wrong-secret-value-123", "1000.wrong-refresh-token-123"})
    tokens = TokenProvider(make_session(), sb.url, creds["client_id"], "wrong-secret-value-123",
                           creds["refresh_token"])
    error = expect(ZohoAuthError, tokens.token)
    assert error.code == "invalid_client"
    assert "check client_id/client_secret and the data center" in str(error)
    assert "a wrong data center is a common cause" in str(error)
    assert expect(ZohoAuthError, tokens.token) is error     # not asked again at once
    assert sb.calls["accounts.token"] == 1

    tokens = TokenProvider(make_session(), sb.url, creds["client_id"], creds["client_secret"],
                           "1000.wrong-refresh-token-123")
    error = expect(ZohoAuthError, tokens.token)
    assert error.code == "invalid_code" and "refresh token is wrong or revoked" in str(error)
    assert sb.calls["accounts.token"] == 2


def test_the_eleventh_token_in_ten_minutes_is_access_denied():
    clock = FrozenClock(NOW)
    with sandbox(clock=clock) as sb:
        for _ in range(10):
            TokenProvider(make_session(), sb.url, **sb.credentials).token()
        error = expect(ZohoAuthError, TokenProvider(make_session(), sb.url, **sb.credentials).token)
        assert error.code == "Access Denied" and error.status_code == 400
        assert "10 access tokens per 10 minutes" in str(error)
        assert sb.calls["accounts.token"] == 11
        clock.advance(601)
        assert TokenProvider(make_session(), sb.url, **sb.credentials).token()


# -- retries -----------------------------------------------------------------------------------

@pytest.mark.parametrize("retry_after", [1, None])
def test_429_is_retried_with_retry_after_or_exponential_backoff(sb, retry_after):
    sb.seed(2)
    clients = Clients(sb)
    clients.tokens.token()
    sb.inject("/crm/v8/Events", "429", count=2, retry_after=retry_after)
    assert len(walk(clients.crm)) == 2
    assert sb.calls["crm.list"] == 3 and clients.http.calls["crm"] == 3
    if retry_after:
        assert clients.sleeps == [1.0, 1.0]
    else:   # backoff_factor 0.01: 0.01·2^(n-1) plus up to as much jitter
        assert 0.01 <= clients.sleeps[0] <= 0.02 and 0.02 <= clients.sleeps[1] <= 0.04


def test_429_persisting_gives_up_as_too_many_requests(sb):
    clients = Clients(sb)
    clients.tokens.token()
    sb.inject("/crm/v8/Events", "429", count=10)
    error = expect(ZohoUnreachable, walk, clients.crm)
    assert error.code == "TOO_MANY_REQUESTS" and error.status_code == 429 and error.transient
    assert sb.calls["crm.list"] == 5 and len(clients.sleeps) == 4     # 1 + 4 retries


def test_a_retry_after_beyond_the_limit_is_not_waited_out(sb):
    clients = Clients(sb)
    clients.tokens.token()
    sb.inject("/crm/v8/Events", "429", count=1, retry_after=3600)
    error = expect(ZohoUnreachable, walk, clients.crm)
    assert error.code == "TOO_MANY_REQUESTS" and "Retry-After: 3600" in str(error)
    assert sb.calls["crm.list"] == 1 and clients.sleeps == []


def test_429_on_a_write_is_resent_because_the_server_refused_it_unprocessed(sb):
    _, booking_id = sb.book(start=NOW + dt.timedelta(days=3), time_zone="Asia/Kolkata")
    clients = Clients(sb)
    clients.tokens.token()
    sb.inject("rescheduleappointment", "429", count=1, retry_after=1)
    moved = clients.bookings.reschedule(booking_id, bookings_time(4))
    assert isinstance(moved, Appointment) and moved.start == NOW + dt.timedelta(days=4)
    assert sb.calls["bookings.rescheduleappointment"] == 2 and clients.sleeps == [1.0]
    assert sb.appointment(booking_id)["start"] == NOW + dt.timedelta(days=4)


def test_500_then_success_on_a_read(sb):
    _, booking_id = sb.book(start=NOW + dt.timedelta(days=3), time_zone="Asia/Kolkata")
    clients = Clients(sb)
    clients.tokens.token()
    sb.inject("getappointment", "500", count=1)
    assert clients.bookings.get(booking_id).booking_id == booking_id
    assert sb.calls["bookings.getappointment"] == 2 and len(clients.sleeps) == 1


def test_500_persisting_on_a_read_and_once_on_a_write(sb):
    _, booking_id = sb.book(start=NOW + dt.timedelta(days=3), time_zone="Asia/Kolkata")
    clients = Clients(sb)
    clients.tokens.token()
    sb.inject("/crm/v8/Events", "500", count=10)
    error = expect(ZohoUnreachable, walk, clients.crm)
    assert error.code == "INTERNAL_ERROR" and sb.calls["crm.list"] == 5
    sb.clear_faults()
    sb.inject("rescheduleappointment", "500", count=1)
    error = expect(ZohoUnreachable, clients.bookings.reschedule, booking_id, bookings_time(4))
    assert error.status_code == 500 and error.transient
    assert sb.calls["bookings.rescheduleappointment"] == 1     # may have been applied: not resent


def test_a_dropped_connection_is_retried_on_get_but_not_resent_on_post(sb):
    _, booking_id = sb.book(start=NOW + dt.timedelta(days=3), time_zone="Asia/Kolkata")
    clients = Clients(sb)
    clients.tokens.token()
    sb.inject("getappointment", "drop", count=1)
    assert clients.bookings.get(booking_id).status == "upcoming"
    assert sb.calls["bookings.getappointment"] == 2
    sb.inject("rescheduleappointment", "drop", count=1)
    error = expect(ZohoUnreachable, clients.bookings.reschedule, booking_id, bookings_time(5))
    assert "connection dropped" in str(error) and error.code == "UNREACHABLE"
    assert sb.calls["bookings.rescheduleappointment"] == 1
    assert sb.appointment(booking_id)["start"] == NOW + dt.timedelta(days=3)


def test_a_stalled_reply_times_out_retried_on_get_only(sb):
    _, booking_id = sb.book(start=NOW + dt.timedelta(days=3), time_zone="Asia/Kolkata")
    clients = Clients(sb, read_timeout=0.5)
    clients.tokens.token()
    sb.inject("getappointment", "stall", count=1, stall_seconds=1.0)
    assert clients.bookings.get(booking_id).booking_id == booking_id
    assert sb.calls["bookings.getappointment"] == 2
    sb.inject("rescheduleappointment", "stall", count=1, stall_seconds=1.0)
    error = expect(ZohoUnreachable, clients.bookings.reschedule, booking_id, bookings_time(6))
    assert error.code == "TIMEOUT" and "no answer within 0.5 s" in str(error)
    assert sb.calls["bookings.rescheduleappointment"] == 1


def test_connection_refused_is_retried_even_for_a_write(sb):
    _, booking_id = sb.book(start=NOW + dt.timedelta(days=3), time_zone="Asia/Kolkata")
    clients = Clients(sb, api_url=f"http://127.0.0.1:{free_port()}")   # nobody listens
    error = expect(ZohoUnreachable, clients.bookings.reschedule, booking_id, bookings_time(4))
    assert "cannot connect" in str(error) and error.code == "UNREACHABLE"
    # Never reached a server, so safe to send again: 1 + 4 attempts, 4 waits.
    assert clients.http.calls["bookings"] == 5 and len(clients.sleeps) == 4
    assert sb.calls["accounts.token"] == 1


def test_bookings_html_401_refreshes_once_then_gives_up():
    with sandbox(token_ttl=0) as sb:               # every token is dead on arrival
        _, booking_id = sb.book(start=NOW + dt.timedelta(days=3))
        clients = Clients(sb)
        error = expect(ZohoAuthError, clients.bookings.get, booking_id)
        assert error.status_code == 401 and "<html" not in str(error).lower()
        assert sb.calls["bookings.getappointment"] == 2 and sb.calls["accounts.token"] == 2


def test_bookings_html_401_after_expiry_recovers_with_one_refresh(sb):
    _, booking_id = sb.book(start=NOW + dt.timedelta(days=3))
    clients = Clients(sb)
    clients.bookings.get(booking_id)
    sb.expire_tokens()
    sb.reset_counters()
    assert clients.bookings.get(booking_id).booking_id == booking_id
    assert sb.calls["bookings.getappointment"] == 2 and sb.calls["accounts.token"] == 1


# -- Bookings ----------------------------------------------------------------------------------

def test_get_reads_wall_time_in_the_appointment_zone_and_encodes_the_hash(sb):
    start = dt.datetime(2031, 2, 10, 10, 0, tzinfo=UTC)
    _, booking_id = sb.book(start=start, time_zone="Asia/Calcutta",
                            customer_time_zone="Europe/Berlin")
    assert booking_id.startswith("#")
    appt = Clients(sb).bookings.get(booking_id)
    assert (appt.booking_id, appt.status) == (booking_id, "upcoming")
    assert appt.start_text == "10-Feb-2031 15:30:00" and appt.time_zone == "Asia/Calcutta"
    assert appt.start == start and appt.start.utcoffset() == dt.timedelta(0)
    assert appt.customer_time_zone == "Europe/Berlin"
    assert appt.customer_start_text == "2031-02-10 11:00:00"
    assert appt.staff_id == "staff-1" and appt.raw["booking_id"] == booking_id
    [entry] = [e for e in sb.request_log if e["endpoint"] == "bookings.getappointment"]
    assert entry["query"] == {"booking_id": booking_id}


def test_a_refused_reschedule_is_a_business_failure_with_zohos_message(sb):
    sb.book(start=NOW + dt.timedelta(days=3), time_zone="UTC", staff_id="ana")
    _, booking_id = sb.book(start=NOW + dt.timedelta(days=4), time_zone="UTC", staff_id="ana")
    clients = Clients(sb)
    error = expect(BookingsRefused, clients.bookings.reschedule, booking_id,
                   bookings_time(3, "UTC"))
    assert error.message.startswith("Slot not available") and not error.transient
    assert sb.calls["bookings.rescheduleappointment"] == 1
    error = expect(BookingsRefused, clients.bookings.reschedule, booking_id,
                   bookings_time(-1, "UTC"))
    assert "past" in error.message and sb.calls["bookings.rescheduleappointment"] == 2
    unknown = expect(BookingsRefused, clients.bookings.get, "#AN-99999")
    assert "Invalid booking id" in unknown.message


def test_the_daily_call_limit_is_transient_not_a_refusal():
    with sandbox(bookings_daily_limit=1) as sb:
        _, booking_id = sb.book(start=NOW + dt.timedelta(days=3))
        clients = Clients(sb)
        clients.bookings.get(booking_id)
        error = expect(ZohoUnreachable, clients.bookings.reschedule, booking_id,
                       bookings_time(4, "UTC"))
        assert error.code == "BOOKINGS_CALL_LIMIT" and "call limit" in str(error)
        assert sb.calls["bookings.rescheduleappointment"] == 1


def test_update_status_and_book(sb):
    meeting_id, booking_id = sb.book(start=NOW + dt.timedelta(days=3))
    clients = Clients(sb)
    assert clients.bookings.update_status(booking_id, "cancel")["status"] == "cancel"
    assert sb.appointment(booking_id)["status"] == "cancel"
    again = expect(BookingsRefused, clients.bookings.update_status, booking_id, "cancel")
    assert "already" in again.message
    # The action vocabulary lives in engine.model; Bookings itself refuses anything else.
    unknown = expect(BookingsRefused, clients.bookings.update_status, booking_id, "postpone")
    assert "postpone" in unknown.message and sb.appointment(booking_id)["status"] == "cancel"
    # The sandbox checks a booking against its catalog, business hours (Mon-Fri 09-18 in the
    # workspace zone) and the customer's details: a known staff member, a weekday 10:00, a phone.
    day = (NOW + dt.timedelta(days=9)).date()
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    start = dt.datetime.combine(day, dt.time(10), UTC)
    new_id = clients.bookings.book("svc-1", "staff-1", format_bookings_time(start, "UTC"),
                                   {"name": "Kim", "email": "kim@example.invalid",
                                    "phone_number": "+15550100"},
                                   time_zone="UTC")
    assert sb.appointment(new_id)["start"] == start
    assert sb.calls["bookings.updateappointment"] == 3 and sb.calls["bookings.appointment"] == 1


def test_unreadable_appointments_name_the_booking_and_the_value():
    good = {"booking_id": "#AN-1", "start_time": "28-May-2030 13:00:00",
            "time_zone": "Asia/Calcutta", "status": "UPCOMING"}
    assert Appointment.from_returnvalue(good, "#AN-1").status == "upcoming"
    error = expect(ZohoPayloadError, Appointment.from_returnvalue,
                   dict(good, time_zone="Mars/Olympus"), "#AN-1")
    assert "#AN-1" in str(error) and "Mars/Olympus" in str(error)
    error = expect(ZohoPayloadError, Appointment.from_returnvalue,
                   dict(good, start_time="2030-05-28 13:00"), "#AN-1")
    assert "#AN-1" in str(error) and "2030-05-28 13:00" in str(error)
    error = expect(ZohoPayloadError, Appointment.from_returnvalue,
                   {k: v for k, v in good.items() if k != "start_time"}, "#AN-1")
    assert "'start_time'" in str(error)


# -- CRM paging --------------------------------------------------------------------------------

def test_keyset_paging_sees_every_meeting_when_one_is_edited_between_pages():
    clock = FrozenClock(NOW)
    with sandbox(clock=clock) as sb:
        pairs = []
        for i in range(450):                       # three meetings per second, 150 seconds
            pairs.append(sb.book(start=NOW + dt.timedelta(days=2, minutes=30 * i),
                                 staff_id=f"s{i}"))
            if i % 3 == 2:
                clock.advance(1)
        edited = pairs[1][0]
        clients = Clients(sb)

        def edit_once(endpoint, query):
            if sb.meeting(edited)["Description"] is None:
                clock.advance(1)
                sb.crm_edit(edited, Description="edited between two page requests")
        sb.on_page = edit_once
        seen = walk(clients.crm)
        assert set(seen) == {m for m, _ in pairs}
        assert parse_crm_datetime(seen[edited]) == sb.meeting(edited)["Modified_Time"]
        # Keyset steps only (page=1 every time, no rewinds): 450 + the edit, 200 a page,
        # each step re-reading the last second's three records.
        queries = list_queries(sb)
        assert sb.calls["crm.list"] == 3 and all(q.get("page") == "1" for q in queries)
        assert all(q["sort_by"] == "Modified_Time" and q["sort_order"] == "asc" for q in queries)
        assert set(queries[0]["fields"].split(",")) == {"id", "Modified_Time", *FIELDS}


def test_250_meetings_edited_in_one_second_are_all_seen():
    clock = FrozenClock(NOW)
    with sandbox(clock=clock) as sb:
        pairs = [sb.book(start=NOW + dt.timedelta(days=2, minutes=30 * i), staff_id=f"s{i}")
                 for i in range(250)]
        clock.advance(5)
        for meeting_id, _ in pairs:               # a bulk update: 250 edits in one second
            sb.crm_edit(meeting_id, Description="bulk")
        clients = Clients(sb)
        seen = walk(clients.crm, since=NOW + dt.timedelta(seconds=1))
        assert set(seen) == {m for m, _ in pairs}
        # The first page shares one second: step by page under the same If-Modified-Since.
        assert [q.get("page") for q in list_queries(sb)] == ["1", "2"]


def test_an_edit_inside_a_crowded_second_between_pages_rewinds_instead_of_skipping(
        captured_logs):
    clock = FrozenClock(NOW)
    with sandbox(clock=clock) as sb:
        pairs = [sb.book(start=NOW + dt.timedelta(days=2, minutes=30 * i), staff_id=f"s{i}")
                 for i in range(450)]             # all 450 in one second
        edited = pairs[5][0]

        def edit_once(endpoint, query):
            if sb.meeting(edited)["Description"] is None:
                clock.advance(1)                  # it leaves the crowded second: the rest
                sb.crm_edit(edited, Description="moved")   # shift up one slot
        sb.on_page = edit_once
        clients = Clients(sb)
        seen = walk(clients.crm)
        assert set(seen) == {m for m, _ in pairs}
        assert parse_crm_datetime(seen[edited]) == NOW + dt.timedelta(seconds=1)
        # Pages 1-3 (one record skipped by the shift), the edited record seen again with a
        # newer time → one rewind re-reading pages 1-3.
        assert [q.get("page") for q in list_queries(sb)] == ["1", "2", "3", "1", "2", "3"]
        assert "crm.paging_rewind" in captured_logs.getvalue()


def test_page_token_is_used_past_2000_records():
    with sandbox(clock=FrozenClock(NOW)) as sb:
        pairs = [sb.book(start=NOW + dt.timedelta(days=2, minutes=30 * i), staff_id=f"s{i}")
                 for i in range(2300)]            # all in one frozen second
        seen = walk(Clients(sb).crm)
        assert len(seen) == 2300 and set(seen) == {m for m, _ in pairs}
        queries = list_queries(sb)
        assert [q.get("page") for q in queries[:10]] == [str(p) for p in range(1, 11)]
        assert all("page_token" in q and "page" not in q for q in queries[10:])
        assert sb.calls["crm.list"] == 12


def test_nothing_modified_is_one_204_and_no_pages(sb):
    sb.seed(3)
    clients = Clients(sb)
    pages = list(clients.crm.iter_modified(NOW + dt.timedelta(hours=1), FIELDS))
    assert [record for page in pages for record in page.records] == []
    assert [e["status"] for e in sb.request_log if e["endpoint"] == "crm.list"] == [204]


def test_deleted_fields_get_update_and_cancel(sb):
    meeting_id, _ = sb.book(start=NOW + dt.timedelta(days=3))
    other_id, _ = sb.book(start=NOW + dt.timedelta(days=4))
    clients = Clients(sb)
    names = {f["api_name"] for f in clients.crm.fields()}
    assert {"Start_DateTime", "Modified_Time", "BookingId"} <= names
    assert clients.crm.get_meeting(meeting_id, FIELDS)["id"] == meeting_id

    details = clients.crm.update_meeting(meeting_id,
                                         {"Start_DateTime": NOW + dt.timedelta(days=8)})
    assert details["id"] == meeting_id
    assert sb.meeting(meeting_id)["Start_DateTime"] == NOW + dt.timedelta(days=8)
    error = expect(ZohoApiError, clients.crm.update_meeting, "123", {"Event_Title": "x"})
    assert error.code == "INVALID_DATA"

    clients.crm.cancel_meeting(other_id)
    assert sb.meeting(other_id)["Meeting_Status"] == "Cancelled"

    since = NOW - dt.timedelta(minutes=1)
    assert [d for page in clients.crm.iter_deleted(since) for d in page.records] == []  # 204
    sb.crm_delete(meeting_id)
    deleted = [d for page in clients.crm.iter_deleted(since) for d in page.records]
    assert [d["id"] for d in deleted] == [meeting_id]
    assert sb.calls["crm.deleted"] == 2 and sb.calls["crm.update"] == 2
    assert sb.calls["crm.fields"] == 1 and sb.calls["crm.cancel"] == 1


# -- data centers ------------------------------------------------------------------------------

def test_data_centers_and_overrides():
    # Every data center Zoho documents for Bookings (and CRM), plus Accounts' UK, flagged.
    assert set(DATA_CENTERS) == {"com", "eu", "in", "com.au", "jp", "ca", "com.cn", "sa", "uk"}
    assert [key for key, dc in DATA_CENTERS.items() if not dc.documented] == ["uk"]
    assert DATA_CENTERS["uk"].note and not DATA_CENTERS["eu"].note
    # Canada: Accounts and the console under zohocloud.ca, the API under zohoapis.ca.
    ca = DATA_CENTERS["ca"]
    assert (ca.accounts, ca.api, ca.console) == ("https://accounts.zohocloud.ca",
                                                 "https://www.zohoapis.ca",
                                                 "https://api-console.zohocloud.ca")
    assert DATA_CENTERS["com.cn"].console == "https://api-console.zoho.com.cn"
    assert data_center_of("https://www.zohoapis.eu").key == "eu"
    assert data_center_of("https://www.zohoapis.com:443/").key == "com"
    assert data_center_of("http://127.0.0.1:8765") is None and data_center_of(None) is None
    assert endpoints("com") == ("https://accounts.zoho.com", "https://www.zohoapis.com")
    assert endpoints("eu") == ("https://accounts.zoho.eu", "https://www.zohoapis.eu")
    assert endpoints("com.au") == ("https://accounts.zoho.com.au", "https://www.zohoapis.com.au")
    assert endpoints("ca") == ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca")
    assert endpoints("sa") == ("https://accounts.zoho.sa", "https://www.zohoapis.sa")
    assert endpoints("in", accounts_url="http://127.0.0.1:9/") == (
        "http://127.0.0.1:9", "https://www.zohoapis.in")
    assert endpoints("jp", api_url="http://127.0.0.1:8") == (
        "https://accounts.zoho.jp", "http://127.0.0.1:8")
    with pytest.raises(ValueError, match="unknown data center 'us'.*com \\| eu"):
        endpoints("us")


# -- no credential anywhere --------------------------------------------------------------------

def test_no_credential_in_any_log_line_or_exception_text(captured_logs, tmp_path):
    """Failure paths at debug level, then this module's whole log so far, searched for the
    client secret, the refresh token and every access token the sandboxes issued."""
    with sandbox(token_ttl=0) as sb:
        _, booking_id = sb.book(start=NOW + dt.timedelta(days=3))
        expect(ZohoAuthError, Clients(sb).bookings.get, booking_id)      # 401 twice
    with sandbox() as sb:
        _, booking_id = sb.book(start=NOW + dt.timedelta(days=3))
        clients = Clients(sb, tmp_path, read_timeout=0.3)
        wrong = TokenProvider(clients.session, sb.url, sb.credentials["client_id"],
                              "not-the-secret-0000", sb.credentials["refresh_token"])
        SECRETS.add("not-the-secret-0000")
        expect(ZohoAuthError, wrong.token)
        sb.inject("/crm/v8/Events", "500", count=10)
        expect(ZohoUnreachable, walk, clients.crm)
        sb.inject("rescheduleappointment", "drop", count=1)
        expect(ZohoUnreachable, clients.bookings.reschedule, booking_id, bookings_time(4))
        sb.inject("getappointment", "stall", count=5, stall_seconds=0.5)
        expect(ZohoUnreachable, clients.bookings.get, booking_id)
        sb.expire_tokens()
        clients.bookings.get(booking_id)
    text = captured_logs.getvalue()
    assert "zoho.retry" in text and "zoho.token_refreshed" in text and "urllib3" in text
    assert "Zoho-oauthtoken" not in text
    everything = LOG.getvalue() + text + "\n".join(TEXTS)
    assert len(SECRETS) >= 5
    assert leaks(everything) == []
