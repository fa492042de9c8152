"""Booking from CRM end to end: a meeting ticked in CRM becomes one Bookings appointment, and
afterwards exactly one CRM meeting carries it. The console script in a subprocess against the
sandbox over HTTP (its Bookings catalog, business hours and integration are Zoho's behaviours as
docs/zoho-bookings.md describes them); the integration-window case runs in-process with the
sandbox's clock steered.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import signal
import subprocess
import sys
from collections import Counter

import pytest

from bookings_sync.config import load
from bookings_sync.runtime import Runtime
from bookings_sync.sandbox import FrozenClock

from e2e import NOW, UTC, child_env, cli, reschedules, run_once, write_config

EXTRA_FIELDS = {"Book_In_Bookings": "boolean", "Bookings_Service": "text",
                "Bookings_Staff": "text", "Customer_Time_Zone": "text", "Booking_Result": "text"}
BOOK = """[book]
trigger_field = "Book_In_Bookings"
service_field = "Bookings_Service"
staff_field = "Bookings_Staff"
time_zone_field = "Customer_Time_Zone"
default_time_zone = "Europe/London"
result_field = "Booking_Result"
{extra}
"""


def weekday_at(days: int, hour: int, minute: int = 0) -> dt.datetime:
    """``hour``:``minute`` UTC on the first Wednesday at least ``days`` days after now."""
    day = (NOW + dt.timedelta(days=days)).date()
    day += dt.timedelta(days=(2 - day.weekday()) % 7)
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@pytest.fixture
def sb(make_sandbox):
    return make_sandbox(extra_event_fields=EXTRA_FIELDS)


def book_config(sb, tmp_path, extra: str = ""):
    return write_config(sb, tmp_path / "state", tmp_path / "sync.toml",
                        tables=BOOK.format(extra=extra))


def customer(sb, email="kim@example.invalid", phone="+44 20 7946 0000", **more) -> str:
    return sb.crm_create_contact(First_Name="Kim", Last_Name="Lee", Email=email, Phone=phone,
                                 **more)


def ticked(sb, start, contact, service="Consultation (svc-1)", staff="staff3@sandbox.invalid",
           zone=None, **more) -> str:
    fields = {"Start_DateTime": start, "Book_In_Bookings": True, "Bookings_Service": service,
              "Bookings_Staff": staff, "Who_Id": contact, "Description": "first visit", **more}
    if zone:
        fields["Customer_Time_Zone"] = zone
    return sb.crm_create_meeting(**fields)


def appointment_calls(sb) -> list[dict]:
    return [e for e in sb.request_log if e["endpoint"] == "bookings.appointment"]


def bookings_calls(sb) -> int:
    return sum(n for k, n in sb.calls.items() if k.startswith("bookings."))


def carriers(sb, booking_id) -> list[str]:
    with sb.world.lock:
        return [m for m, r in sb.world.meetings.items() if r.get("BookingId") == booking_id]


def test_a_ticked_meeting_is_booked_once_in_the_customers_zone_then_one_meeting_carries_it(
        sb, tmp_path):
    config = book_config(sb, tmp_path)
    assert run_once(config).code == 0                      # the baseline books nothing
    # After New York's spring-forward of 14 March 2027: 14:00 UTC is 10:00 EDT, not 09:00.
    start = dt.datetime(2027, 3, 17, 14, tzinfo=UTC)
    request_meeting = ticked(sb, start, customer(sb), zone="America/New_York")
    sb.reset_counters()
    booked = run_once(config)
    assert booked.code == 0, booked.stderr[-2000:]
    [call] = appointment_calls(sb)
    form = call["form"]
    assert (form["service_id"], form["staff_id"]) == ("svc-1", "staff-3")
    assert (form["from_time"], form["time_zone"]) == ("17-Mar-2027 10:00:00", "America/New_York")
    assert json.loads(form["customer_details"]) == {
        "name": "Kim Lee", "email": "kim@example.invalid", "phone_number": "+44 20 7946 0000"}
    assert form["notes"] == "first visit"
    assert call["headers"]["Content-Type"].startswith("multipart/form-data")
    [action] = booked.event("action")
    booking_id = action["booking_id"]
    assert action["outcome"] == "done" and sb.appointment(booking_id)["start"] == start
    # The request meeting says so, its trigger cleared.
    request = sb.meeting(request_meeting)
    assert request["Booking_Result"] == f"Booked {booking_id}"
    assert request["Book_In_Bookings"] is False

    linked = run_once(config)                               # Zoho's own meeting has appeared
    assert linked.code == 0, linked.stderr[-2000:]
    [zoho_meeting] = carriers(sb, booking_id)
    assert zoho_meeting != request_meeting
    assert request_meeting not in sb.world.meetings         # on_booked = "delete"
    assert sb.meeting(zoho_meeting)["Description"] == "first visit"
    sb.reset_counters()
    for _ in range(2):                                      # settled: no Bookings call at all
        assert run_once(config).code == 0
    assert bookings_calls(sb) == 0
    sb.crm_move(zoho_meeting, start + dt.timedelta(hours=2))   # and it moves like any other
    assert run_once(config).code == 0
    assert [e["form"]["booking_id"] for e in reschedules(sb)] == [booking_id]
    assert sb.appointment(booking_id)["start"] == start + dt.timedelta(hours=2)


def test_keep_leaves_the_request_meeting_unlinked(sb, tmp_path):
    config = book_config(sb, tmp_path, 'on_booked = "keep"')
    assert run_once(config).code == 0
    request_meeting = ticked(sb, weekday_at(5, 10), customer(sb))
    assert run_once(config).code == 0
    assert run_once(config).code == 0
    booking_id = sb.meeting(request_meeting)["Booking_Result"].removeprefix("Booked ")
    assert len(carriers(sb, booking_id)) == 1 and request_meeting not in carriers(sb, booking_id)
    assert sb.meeting(request_meeting)["BookingId"] is None      # kept, unlinked


@pytest.mark.parametrize("case,needle", [
    ("slot taken", "Slot not available"),
    ("outside business hours", "business hours"),
    ("staff does not offer the service", "does not offer service"),
    ("unknown service", "did you mean 'Consultation (svc-1)'"),
    ("unknown staff", "is not a Bookings staff member"),
    ("no contact email", "has no email address"),
    ("start in the past", "starts in the past"),
])
def test_each_refusal_is_recorded_with_its_reason_and_not_retried(sb, tmp_path, case, needle):
    config = book_config(sb, tmp_path)
    assert run_once(config).code == 0
    start, contact, fields = weekday_at(5, 10), customer(sb), {}
    if case == "slot taken":
        sb.book(start=start, staff_id="staff-3")
    elif case == "outside business hours":
        start = weekday_at(5, 20)
    elif case == "staff does not offer the service":
        fields["service"] = "Extended consultation"
    elif case == "unknown service":
        fields["service"] = "Consultaton (svc-1)"
    elif case == "unknown staff":
        fields["staff"] = "nobody@sandbox.invalid"
    elif case == "no contact email":
        contact = customer(sb, email=None)
    elif case == "start in the past":
        start = NOW - dt.timedelta(days=1)
    request_meeting = ticked(sb, start, contact, **fields)
    sb.reset_counters()
    refused = run_once(config)
    assert refused.code == 1 and "Traceback" not in refused.stderr
    [action] = refused.event("action")
    assert action["outcome"] == "refused" and needle in action["reason"]
    assert sb.meeting(request_meeting)["Booking_Result"].startswith("Not booked: ")
    assert needle in sb.meeting(request_meeting)["Booking_Result"]
    status = json.loads(cli("--config", str(config), "status", "--json").stdout)
    [failure] = status["failures"]
    assert failure["kind"] == "book" and needle in failure["reason"]
    sb.reset_counters()
    assert run_once(config).code in (0, 1)                  # the same request: not retried
    assert appointment_calls(sb) == []
    assert not any(a.get("source") == "api" for a in sb.world.appointments.values())


def test_the_guard_holds_a_burst_until_released(sb, tmp_path):
    config = book_config(sb, tmp_path, "max_per_cycle = 3")
    assert run_once(config).code == 0
    contact = customer(sb)
    for i in range(5):
        ticked(sb, weekday_at(5, 10 + i), contact)
    held = run_once(config)
    assert held.code == 1 and appointment_calls(sb) == []
    [guard] = held.event("guard.mass_book")
    assert "would book 5 meetings" in guard["reason"] and "--allow-mass-book" in guard["reason"]
    assert run_once(config).code == 1 and appointment_calls(sb) == []       # still held
    released = run_once(config, "--allow-mass-book")
    assert released.code == 0 and len(appointment_calls(sb)) == 5


def test_dry_run_shows_the_bookings_it_would_make(sb, tmp_path):
    config = book_config(sb, tmp_path)
    assert run_once(config).code == 0
    ticked(sb, weekday_at(5, 10), customer(sb), zone="Asia/Kolkata")
    result = run_once(config, "--dry-run")
    assert "would book 'Consultation (svc-1)' with staff3@sandbox.invalid" in result.stdout
    assert "customer zone Asia/Kolkata" in result.stdout and appointment_calls(sb) == []


def test_a_lost_reply_is_looked_up_not_booked_again(sb, tmp_path):
    config = book_config(sb, tmp_path)
    assert run_once(config).code == 0
    ticked(sb, weekday_at(5, 10), customer(sb))
    sb.inject("/appointment", "truncated")        # booked in Bookings, the reply cut short
    lost = run_once(config)
    assert lost.code == 3 and lost.event("action")[0]["outcome"] == "retry"
    again = run_once(config)
    assert again.code == 0, again.stderr[-2000:]
    assert "not booked again" in again.event("action")[0]["reason"]
    assert sb.calls["bookings.appointment"] == 1 and sb.calls["bookings.fetchappointment"] == 1
    assert sum(1 for a in sb.world.appointments.values() if a.get("source") == "api") == 1


@pytest.mark.slow
def test_30_kills_at_random_moments_never_double_book(sb, tmp_path):
    config = book_config(sb, tmp_path)
    assert run_once(config).code == 0
    rng = random.Random(int.from_bytes(__import__("os").urandom(4), "big"))
    contact = customer(sb)
    wanted = {}
    for round_no in range(30):
        start = weekday_at(5 + 7 * (round_no // 8), 9 + round_no % 8)   # a week per 8
        wanted[ticked(sb, start, contact, staff=f"staff{round_no % 8}@sandbox.invalid")] = start
        child = subprocess.Popen([sys.executable, "-m", "bookings_sync", "--config", str(config),
                                  "--run-once", "--log-format", "json"], env=child_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            child.wait(timeout=rng.uniform(0.05, 1.0))
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait()
    for _ in range(4):                                   # clean runs: everything settles
        run_once(config)
    booked = Counter((a["customer_email"], a["start"]) for a in sb.world.appointments.values()
                     if a.get("source") == "api")
    assert set(booked.values()) == {1}, booked           # never twice
    assert sorted(start for _, start in booked) == sorted(wanted.values())


@pytest.mark.parametrize("history", ["new", "unlinked before"])
def test_without_zohos_meeting_the_request_meeting_carries_the_booking(make_sandbox, tmp_path,
                                                                       history):
    clock = FrozenClock(NOW)
    sb = make_sandbox(clock=clock, extra_event_fields=EXTRA_FIELDS,
                      integration_meetings_for_api_bookings=False)
    runtime = Runtime(load(book_config(sb, tmp_path)))
    runtime.cycle.clock = clock.now
    try:
        assert runtime.cycle.run().exit_code == 0
        clock.advance(60)
        if history == "new":
            request_meeting = ticked(sb, weekday_at(5, 10), customer(sb))
        else:
            # A meeting that once carried a booking id keeps an (unlinked) snapshot row: the
            # row the link writes must replace it, or our own PUT reads back as a relink.
            request_meeting = ticked(sb, weekday_at(5, 10), customer(sb),
                                     Book_In_Bookings=False, BookingId="#AN-77777")
            assert runtime.cycle.run().exit_code == 0
            clock.advance(60)
            sb.crm_edit(request_meeting, BookingId=None)
            assert runtime.cycle.run().exit_code == 0
            assert runtime.store.meeting(request_meeting)["id"] == request_meeting   # row kept
            clock.advance(60)
            sb.crm_edit(request_meeting, Book_In_Bookings=True)
        clock.advance(60)
        assert runtime.cycle.run().exit_code == 0
        [booking_id] = [a["booking_id"] for a in sb.world.appointments.values()]
        clock.advance(14 * 60)
        runtime.cycle.run()
        assert carriers(sb, booking_id) == []              # still inside the window
        clock.advance(2 * 60)
        assert runtime.cycle.run().exit_code == 0
        assert carriers(sb, booking_id) == [request_meeting]
        sb.reset_counters()
        for _ in range(2):                                  # our own PUT is no change
            clock.advance(60)
            assert runtime.cycle.run().exit_code == 0
        assert bookings_calls(sb) == 0
    finally:
        runtime.close()


def test_check_proves_what_booking_from_crm_needs(sb, tmp_path):
    config = book_config(sb, tmp_path)
    result = cli("--config", str(config), "check")
    assert result.code == 0, result.stdout
    for field in ("trigger_field = 'Book_In_Bookings'", "result_field = 'Booking_Result'"):
        assert f"✓ [book] {field} exists on Meetings" in result.stdout
    assert "✓ CRM Contacts" in result.stdout and "✓ CRM Leads" in result.stdout
    narrow = sb.credentials_with("ZohoCRM.modules.events.ALL,ZohoCRM.settings.fields.READ,"
                                 "ZohoCRM.modules.leads.READ,zohobookings.data.CREATE")
    config.write_text(config.read_text().replace(sb.credentials["refresh_token"],
                                                 narrow["refresh_token"]))
    missing = cli("--config", str(config), "check")
    assert missing.code == 1
    assert "✗ CRM Contacts" in missing.stdout
    assert "the token lacks scope ZohoCRM.modules.contacts.READ" in missing.stdout
