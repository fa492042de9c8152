"""The Zoho clients over real HTTP against the sandbox: each test asserts the outcome and the
exact number of requests sent (API calls are the customer's money)."""

from __future__ import annotations

import datetime as dt
import io
import os
import stat
import time

import pytest

from bookings_sync import logs
from bookings_sync.sandbox import FrozenClock, Sandbox
from bookings_sync.zoho.auth import TokenProvider
from bookings_sync.zoho.bookings import BookingsClient
from bookings_sync.zoho.crm import CrmClient
from bookings_sync.zoho.datacenters import DATA_CENTERS, endpoints
from bookings_sync.zoho.errors import (BookingsRefused, ZohoAuthError, ZohoError,
                                       ZohoUnreachable)
from bookings_sync.zoho.http import ZohoHttp, make_session
from bookings_sync.zoho.timefmt import format_bookings_time

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)
FIELDS = ["Start_DateTime", "End_DateTime", "Created_Time", "BookingId"]
SEEN_TEXT: list[str] = []        # every exception text of this module, checked for secrets
CREDENTIALS: set[str] = set()    # every secret and access token used by this module


def remember(token: str) -> None:
    CREDENTIALS.add(token)
    logs.redactor.add(token)


class Clients:
    def __init__(self, sb: Sandbox, tmp_path, *, read_timeout: float = 5.0, cache=True):
        c = sb.credentials
        CREDENTIALS.update((c["client_secret"], c["refresh_token"]))
        self.session = make_session(retries=3, backoff_factor=0.01, backoff_max=0.05)
        self.tokens = TokenProvider(self.session, sb.url, c["client_id"], c["client_secret"],
                                    c["refresh_token"],
                                    cache_path=tmp_path / "token.json" if cache else None,
                                    on_token=remember)
        self.http = ZohoHttp(self.tokens, self.session, timeout=(2.0, read_timeout))
        self.crm = CrmClient(self.http, sb.url)
        self.bookings = BookingsClient(self.http, sb.url)


@pytest.fixture(autouse=True)
def captured_logs():
    stream = io.StringIO()
    logs.setup("json", level="debug", stream=stream)
    yield stream
    # No credential in any log line or exception text of any test here.
    text = stream.getvalue() + "\n".join(SEEN_TEXT)
    for secret in CREDENTIALS:
        assert secret not in text, "a credential reached a log line or an error"


def expect(exc_type, fn, *args, **kwargs):
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    SEEN_TEXT.append(str(info.value))
    return info.value


@pytest.fixture
def sb():
    with Sandbox(crm_time_zone="Europe/Berlin") as sandbox:
        yield sandbox


def booked(sb, days=3, tz="Asia/Kolkata", **kw):
    return sb.book(start=NOW + dt.timedelta(days=days), time_zone=tz, **kw)


# -- auth ---------------------------------------------------------------------------------

def test_token_expiry_mid_run_refreshes_once_and_retries_once(sb, tmp_path):
    sb.seed(3)
    clients = Clients(sb, tmp_path)
    assert len(list(clients.crm.iter_modified(None, FIELDS))[0]) == 3
    sb.expire_tokens()
    sb.reset_counters()
    assert len(list(clients.crm.iter_modified(None, FIELDS))[0]) == 3
    assert sb.calls["crm.list"] == 2 and sb.calls["accounts.token"] == 1


def test_the_token_is_reused_across_processes_through_a_0600_cache(sb, tmp_path):
    first = Clients(sb, tmp_path)
    first.tokens.token()
    assert stat.S_IMODE(os.stat(tmp_path / "token.json").st_mode) == 0o600
    second = Clients(sb, tmp_path)
    list(second.crm.iter_modified(None, FIELDS))
    assert sb.calls["accounts.token"] == 1 and second.tokens.refreshes == 0
    assert sb.credentials["client_secret"] not in (tmp_path / "token.json").read_text()
    assert sb.credentials["refresh_token"] not in (tmp_path / "token.json").read_text()


def test_a_changed_config_does_not_reuse_the_cached_token(sb, tmp_path):
    Clients(sb, tmp_path).tokens.token()
    c = sb.credentials
    other = TokenProvider(make_session(), sb.url, c["client_id"], c["client_secret"],
                          "1000.another-refresh-token", cache_path=tmp_path / "token.json")
    error = expect(ZohoAuthError, other.token)
    assert error.code == "invalid_code"


def test_invalid_client_names_the_likely_cause(sb, tmp_path):
    c = sb.credentials
    tokens = TokenProvider(make_session(), sb.url, c["client_id"], "wrong-secret-value",
                           c["refresh_token"])
    error = expect(ZohoAuthError, tokens.token)
    assert error.code == "invalid_client" and "data center" in str(error)
    assert sb.calls["accounts.token"] == 1


def test_the_eleventh_token_in_ten_minutes_is_refused(tmp_path):
    with Sandbox(clock=FrozenClock(NOW)) as sb:
        c = sb.credentials
        for _ in range(10):
            TokenProvider(make_session(), sb.url, **c).token()
        error = expect(ZohoAuthError, TokenProvider(make_session(), sb.url, **c).token)
        assert "10 access tokens per 10 minutes" in str(error)
        sb.clock.advance(601)
        assert TokenProvider(make_session(), sb.url, **c).token()


# -- retries --------------------------------------------------------------------------------

@pytest.mark.parametrize("retry_after", [1, None])
def test_429_is_retried_honouring_retry_after(sb, tmp_path, retry_after):
    sb.seed(2)
    clients = Clients(sb, tmp_path)
    clients.tokens.token()
    sb.inject("/crm/v8/Events", "429", count=1, retry_after=retry_after)
    started = time.monotonic()
    assert len(list(clients.crm.iter_modified(None, FIELDS))[0]) == 2
    elapsed = time.monotonic() - started
    assert sb.calls["crm.list"] == 2
    assert clients.http.calls["crm"] == 2
    if retry_after:
        assert elapsed >= 1.0
    else:
        assert elapsed < 1.0


def test_429_on_a_write_is_resent_because_it_was_refused_unprocessed(sb, tmp_path):
    meeting_id, booking_id = booked(sb)
    clients = Clients(sb, tmp_path)
    clients.tokens.token()
    sb.inject("rescheduleappointment", "429", count=1)
    target = format_bookings_time(NOW + dt.timedelta(days=4), "Asia/Kolkata")
    clients.bookings.reschedule(booking_id, target)
    assert sb.calls["bookings.rescheduleappointment"] == 2
    assert sb.appointment(booking_id)["start"] == NOW + dt.timedelta(days=4)


def test_500_then_success(sb, tmp_path):
    meeting_id, booking_id = booked(sb)
    clients = Clients(sb, tmp_path)
    sb.inject("getappointment", "500", count=1)
    assert clients.bookings.get(booking_id).booking_id == booking_id
    assert sb.calls["bookings.getappointment"] == 2


def test_500_on_a_write_is_not_resent(sb, tmp_path):
    meeting_id, booking_id = booked(sb)
    clients = Clients(sb, tmp_path)
    sb.inject("rescheduleappointment", "500", count=1)
    target = format_bookings_time(NOW + dt.timedelta(days=4), "Asia/Kolkata")
    error = expect(ZohoUnreachable, clients.bookings.reschedule, booking_id, target)
    assert error.status_code == 500 and error.transient
    assert sb.calls["bookings.rescheduleappointment"] == 1


def test_persistent_5xx_gives_up_after_the_retry_budget(sb, tmp_path):
    clients = Clients(sb, tmp_path)
    clients.tokens.token()
    sb.inject("/crm/v8/Events", "500", count=10)
    error = expect(ZohoUnreachable, lambda: list(clients.crm.iter_modified(None, FIELDS)))
    assert error.code == "INTERNAL_ERROR"
    assert sb.calls["crm.list"] == 4          # 1 + 3 retries


def test_a_dropped_connection_is_retried_on_get_but_not_on_post(sb, tmp_path):
    meeting_id, booking_id = booked(sb)
    clients = Clients(sb, tmp_path)
    clients.tokens.token()
    sb.inject("getappointment", "drop", count=1)
    assert clients.bookings.get(booking_id).status == "upcoming"
    assert sb.calls["bookings.getappointment"] == 2
    sb.inject("rescheduleappointment", "drop", count=1)
    target = format_bookings_time(NOW + dt.timedelta(days=5), "Asia/Kolkata")
    error = expect(ZohoUnreachable, clients.bookings.reschedule, booking_id, target)
    assert "connection dropped" in str(error)
    assert sb.calls["bookings.rescheduleappointment"] == 1


def test_a_stalled_reply_times_out_and_is_retried_on_get_only(sb, tmp_path):
    meeting_id, booking_id = booked(sb)
    clients = Clients(sb, tmp_path, read_timeout=0.5)
    clients.tokens.token()
    sb.inject("getappointment", "stall", count=1, stall_seconds=1.5)
    assert clients.bookings.get(booking_id).booking_id == booking_id
    assert sb.calls["bookings.getappointment"] == 2
    sb.inject("rescheduleappointment", "stall", count=1, stall_seconds=1.5)
    target = format_bookings_time(NOW + dt.timedelta(days=6), "Asia/Kolkata")
    error = expect(ZohoUnreachable, clients.bookings.reschedule, booking_id, target)
    assert error.code == "TIMEOUT"
    assert sb.calls["bookings.rescheduleappointment"] == 1


def test_bookings_html_401_refreshes_once_then_gives_up(tmp_path):
    with Sandbox(token_ttl=0) as sb:      # every token is dead on arrival
        meeting_id, booking_id = booked(sb)
        clients = Clients(sb, tmp_path, cache=False)
        error = expect(ZohoAuthError, clients.bookings.get, booking_id)
        assert "rejected a freshly minted access token" in str(error)
        assert sb.calls["bookings.getappointment"] == 2 and sb.calls["accounts.token"] == 2


def test_bookings_html_401_after_expiry_recovers(sb, tmp_path):
    meeting_id, booking_id = booked(sb)
    clients = Clients(sb, tmp_path)
    clients.bookings.get(booking_id)
    sb.expire_tokens()
    sb.reset_counters()
    assert clients.bookings.get(booking_id).booking_id == booking_id
    assert sb.calls["bookings.getappointment"] == 2 and sb.calls["accounts.token"] == 1


# -- Bookings -------------------------------------------------------------------------------

def test_get_reads_wall_time_in_the_appointment_zone(sb, tmp_path):
    start = dt.datetime(2027, 2, 10, 10, 0, tzinfo=UTC)
    meeting_id, booking_id = sb.book(start=start, time_zone="Asia/Calcutta",
                                     customer_time_zone="Europe/Berlin")
    appt = Clients(sb, tmp_path).bookings.get(booking_id)
    assert appt.start_text == "10-Feb-2027 15:30:00" and appt.time_zone == "Asia/Calcutta"
    assert appt.start == start
    assert appt.customer_time_zone == "Europe/Berlin"
    assert appt.customer_start_text == "2027-02-10 11:00:00"


def test_a_refused_reschedule_is_a_business_failure_with_zohos_message(sb, tmp_path):
    booked(sb, days=3, tz="UTC", staff_id="ana")
    meeting_id, booking_id = booked(sb, days=4, tz="UTC", staff_id="ana")
    clients = Clients(sb, tmp_path)
    taken = format_bookings_time(NOW + dt.timedelta(days=3), "UTC")
    error = expect(BookingsRefused, clients.bookings.reschedule, booking_id, taken)
    assert "Slot not available" in error.message and not error.transient
    assert sb.calls["bookings.rescheduleappointment"] == 1
    past = format_bookings_time(NOW - dt.timedelta(days=1), "UTC")
    assert "past" in expect(BookingsRefused, clients.bookings.reschedule, booking_id, past).message
    assert "Invalid booking id" in expect(BookingsRefused, clients.bookings.get, "#AN-99999").message


def test_update_status_and_book(sb, tmp_path):
    meeting_id, booking_id = booked(sb, tz="UTC")
    clients = Clients(sb, tmp_path)
    clients.bookings.update_status(booking_id, "cancel")
    assert sb.appointment(booking_id)["status"] == "cancel"
    assert sb.meeting(meeting_id)["Meeting_Status"] == "Cancelled"   # the integration
    again = expect(BookingsRefused, clients.bookings.update_status, booking_id, "cancel")
    assert "already cancelled" in again.message
    new_id = clients.bookings.book("svc-1", "bob", format_bookings_time(NOW + dt.timedelta(days=9), "UTC"),
                                   {"name": "Kim", "email": "kim@example.invalid"}, time_zone="UTC")
    assert sb.appointment(new_id)["start"] == NOW + dt.timedelta(days=9)
    assert sb.meeting(sb.meeting_for_booking(new_id))["BookingId"] == new_id


# -- CRM paging ------------------------------------------------------------------------------

def seen(clients, since=None) -> dict[str, str]:
    latest = {}
    for page in clients.crm.iter_modified(since, FIELDS):
        for record in page:
            latest[record["id"]] = max(latest.get(record["id"], ""), record["Modified_Time"])
    return latest


def test_keyset_paging_misses_nothing_when_a_listed_record_is_edited_between_pages(sb, tmp_path):
    pairs = [booked(sb, days=3 + i % 20, tz="UTC", staff_id=f"s{i}") for i in range(450)]
    for i, (meeting_id, _) in enumerate(pairs):
        sb.crm_edit(meeting_id, Description=f"edit {i}")
        if i % 100 == 99:
            time.sleep(1.02)
    clients = Clients(sb, tmp_path)
    edited = []

    def hook(endpoint, query):
        if not edited:
            edited.append(pairs[2][0])
            time.sleep(1.02)
            sb.crm_edit(pairs[2][0], Description="edited between pages")
    sb.on_page = hook
    latest = seen(clients)
    sb.on_page = None
    assert set(latest) == {m for m, _ in pairs}
    assert latest[pairs[2][0]] == sb.meeting(pairs[2][0])["Modified_Time"].astimezone(
        dt.timezone(dt.timedelta(hours=1))).isoformat()


def test_hundreds_sharing_one_second_and_page_tokens_past_2000(tmp_path):
    with Sandbox(clock=FrozenClock(NOW)) as sb:
        pairs = [sb.book(start=NOW + dt.timedelta(days=3, minutes=i), staff_id=f"s{i}")
                 for i in range(2300)]            # all created in one frozen second
        clients = Clients(sb, tmp_path)
        latest = seen(clients)
        assert len(latest) == 2300
        tokens = [e for e in sb.request_log if e["endpoint"] == "crm.list"
                  and "page_token" in e["query"]]
        assert sb.calls["crm.list"] == 12 and len(tokens) == 2   # pages 1-10, then 2 tokens


def test_nothing_modified_is_204_and_no_records(sb, tmp_path):
    sb.seed(3)
    clients = Clients(sb, tmp_path)
    assert seen(clients, since=NOW + dt.timedelta(hours=1)) == {}
    assert sb.calls["crm.list"] == 1
    assert [e["status"] for e in sb.request_log if e["endpoint"] == "crm.list"] == [204]


def test_fields_update_and_deleted(sb, tmp_path):
    meeting_id, booking_id = booked(sb)
    clients = Clients(sb, tmp_path)
    names = {f["api_name"] for f in clients.crm.fields()}
    assert {"Start_DateTime", "BookingId", "Meeting_Status"} <= names
    details = clients.crm.update_meeting(meeting_id, {"Start_DateTime": NOW + dt.timedelta(days=8)})
    assert details["id"] == meeting_id
    assert sb.meeting(meeting_id)["Start_DateTime"] == NOW + dt.timedelta(days=8)
    sb.crm_delete(meeting_id)
    deleted = [d for page in clients.crm.iter_deleted(NOW - dt.timedelta(minutes=1)) for d in page]
    assert [d["id"] for d in deleted] == [meeting_id]
    error = expect(ZohoError, clients.crm.update_meeting, "123", {"Event_Title": "x"})
    assert error.code == "INVALID_DATA"


# -- data centers ----------------------------------------------------------------------------

def test_data_centers_and_overrides():
    assert endpoints("eu") == ("https://accounts.zoho.eu", "https://www.zohoapis.eu")
    assert endpoints("ca") == ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca")
    assert endpoints("com.cn")[1] == "https://www.zohoapis.com.cn"
    assert endpoints("com", "http://127.0.0.1:9/", "http://127.0.0.1:8") == (
        "http://127.0.0.1:9", "http://127.0.0.1:8")
    assert set(DATA_CENTERS) == {"com", "eu", "in", "com.au", "jp", "ca", "com.cn", "sa"}
    with pytest.raises(ValueError, match="unknown data center 'xx'"):
        endpoints("xx")


def test_a_short_lived_token_is_still_reused(tmp_path):
    with Sandbox(token_ttl=20) as sb:
        sb.seed(2)
        clients = Clients(sb, tmp_path)
        for _ in range(5):
            list(clients.crm.iter_modified(None, FIELDS))
        assert sb.calls["accounts.token"] == 1 and sb.calls["crm.list"] == 5


def test_a_refused_refresh_is_not_retried_at_once(sb, tmp_path):
    c = sb.credentials
    tokens = TokenProvider(make_session(), sb.url, c["client_id"], "wrong-secret-value",
                           c["refresh_token"])
    first = expect(ZohoAuthError, tokens.token)
    again = expect(ZohoAuthError, tokens.token)
    assert again is first and sb.calls["accounts.token"] == 1
