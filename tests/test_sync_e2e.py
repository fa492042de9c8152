"""The sync daemon end to end: the console script in a subprocess against the sandbox over HTTP.

Each test states a promise from the README and counts the API calls it cost.
"""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import pytz

from bookings_sync.sandbox import FrozenClock, Sandbox
from bookings_sync.store import SnapshotStore
from bookings_sync.zoho.timefmt import format_bookings_time

from e2e import NOW, PREMIUM_PLAN, UTC, cli, future, reschedules, run_once, write_config



@pytest.fixture
def config(sb, tmp_path):
    return write_config(sb, tmp_path / "state", tmp_path / "sync.toml")


def bookings_wall(sb, booking_id: str) -> str:
    appt = sb.appointment(booking_id)
    return format_bookings_time(appt["start"], appt["time_zone"])


# -- the core promise ------------------------------------------------------------------------

@pytest.mark.parametrize("crm_zone,booked_zone,start,new_start", [
    # Across the America/New_York spring-forward of 14 March 2027: same wall time in CRM, one
    # hour less in UTC — Bookings must get 10:00 EDT, not 10:00 EST.
    ("America/New_York", "America/New_York",
     pytz.timezone("America/New_York").localize(dt.datetime(2027, 3, 12, 10)),
     pytz.timezone("America/New_York").localize(dt.datetime(2027, 3, 15, 10))),
    # A customer in India; the staff member who drags the meeting works in Berlin.
    ("Europe/Berlin", "Asia/Kolkata",
     pytz.timezone("Asia/Kolkata").localize(dt.datetime(2027, 2, 10, 15, 30)),
     pytz.timezone("Europe/Berlin").localize(dt.datetime(2027, 2, 11, 9, 0))),
])
def test_a_crm_move_moves_the_booking_to_the_same_instant(make_sandbox, tmp_path, crm_zone,
                                                          booked_zone, start, new_start):
    sb = make_sandbox(crm_time_zone=crm_zone)
    meeting_id, booking_id = sb.book(start=start.astimezone(UTC), time_zone=booked_zone)
    config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
    baseline = run_once(config)
    assert baseline.code == 0, baseline.stderr
    assert sb.calls["bookings.getappointment"] == 0        # the baseline acts on nothing

    sb.reset_counters()
    sb.crm_move(meeting_id, new_start.astimezone(UTC))
    result = run_once(config)
    assert result.code == 0, result.stderr
    assert sb.calls["bookings.getappointment"] == 1
    assert sb.calls["bookings.rescheduleappointment"] == 1
    appt = sb.appointment(booking_id)
    assert appt["start"] == new_start.astimezone(UTC)
    [sent] = reschedules(sb)
    assert sent["form"]["start_time"] == format_bookings_time(new_start, booked_zone)
    [line] = [e for e in result.event("action") if e["outcome"] == "done"]
    assert line["meeting_id"] == meeting_id and line["booking_id"] == booking_id
    assert line["new"] == sent["form"]["start_time"]


def test_loop_guard_after_our_reschedule_and_after_one_made_in_bookings(sb, config):
    meeting_id, booking_id = sb.book(start=future(5), time_zone="Europe/Berlin")
    assert run_once(config).code == 0
    sb.crm_move(meeting_id, future(6))
    assert run_once(config).code == 0
    assert sb.calls["bookings.rescheduleappointment"] == 1

    # The integration wrote our reschedule back into CRM; two more cycles must not act again.
    sb.reset_counters()
    for _ in range(2):
        assert run_once(config).code == 0
    assert sb.calls["bookings.rescheduleappointment"] == 0

    # A reschedule made in Bookings reaches CRM through the integration: read, never re-sent.
    sb.bookings_reschedule(booking_id, future(7))
    sb.reset_counters()
    for _ in range(2):
        assert run_once(config).code == 0
    assert sb.calls["bookings.rescheduleappointment"] == 0
    assert sb.calls["bookings.getappointment"] <= 1
    assert sb.appointment(booking_id)["start"] == future(7)


def test_an_idle_cycle_costs_one_crm_call_and_no_bookings_call(sb, config):
    sb.seed(20)
    assert run_once(config).code == 0          # baseline
    assert run_once(config).code == 0          # settles the deleted-records cursor
    sb.reset_counters()
    result = run_once(config)
    assert result.code == 0
    crm = {k: v for k, v in sb.calls.items() if k.startswith("crm.")}
    assert crm.get("crm.list") == 1
    assert sum(crm.values()) <= 2               # + the deleted-records call (on_delete = cancel)
    assert not any(k.startswith("bookings.") for k in sb.calls)
    assert sb.calls["accounts.token"] == 0      # the cached token is reused across processes


def test_dry_run_prints_the_plan_and_changes_nothing(sb, config, tmp_path):
    meeting_id, booking_id = sb.book(start=future(3), time_zone="UTC")
    assert run_once(config).code == 0
    state = (tmp_path / "state" / "state.json").read_bytes()
    sb.crm_move(meeting_id, future(4))
    sb.reset_counters()
    result = run_once(config, "--dry-run")
    assert result.code == 0
    assert f"would reschedule booking {booking_id}" in result.stdout
    assert (tmp_path / "state" / "state.json").read_bytes() == state
    assert not any(k.startswith("bookings.") for k in sb.calls)
    assert sb.calls["crm.update"] == 0


# -- paging: no change missed, none applied twice ------------------------------------------

def test_450_changes_with_an_edit_between_page_requests(sb, tmp_path):
    config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml", tables=PREMIUM_PLAN)
    pairs = [sb.book(start=future(2 + i // 40, hour=6 + (i % 40) // 4, tz="UTC")
                     + dt.timedelta(minutes=15 * (i % 4)), time_zone="UTC", staff_id=f"s{i}")
             for i in range(450)]
    assert run_once(config).code == 0
    moved = {}
    for i, (meeting_id, _) in enumerate(pairs):
        moved[meeting_id] = sb.meeting(meeting_id)["Start_DateTime"] + dt.timedelta(days=30)
        sb.crm_move(meeting_id, moved[meeting_id])
        if i % 150 == 149:
            time.sleep(1.05)     # spread Modified_Time over a few seconds

    edited = {}

    def edit_once(endpoint, query):
        # After the first page was served, a user moves a meeting that page already held.
        if endpoint == "crm.list" and not edited:
            meeting_id = pairs[3][0]
            edited[meeting_id] = moved[meeting_id] + dt.timedelta(hours=1)
            sb.crm_move(meeting_id, edited[meeting_id])
    sb.on_page = edit_once
    sb.reset_counters()
    result = run_once(config)
    sb.on_page = None
    assert result.code == 0, result.stderr[-2000:]
    moved.update(edited)
    # Keyset paging sees the mid-read edit later in the same cycle: the two edits of that
    # meeting coalesce into one reschedule to the latest time, and nothing is skipped.
    assert run_once(config).code == 0
    for meeting_id, booking_id in pairs:
        assert sb.appointment(booking_id)["start"] == moved[meeting_id], booking_id
    counts = Counter(e["form"]["booking_id"] for e in reschedules(sb))
    assert len(counts) == 450 and set(counts.values()) == {1}


def test_250_meetings_sharing_one_modified_second(make_sandbox, tmp_path):
    clock = FrozenClock(NOW)
    sb = make_sandbox(clock=clock)
    pairs = [sb.book(start=future(3, hour=0) + dt.timedelta(minutes=30 * i),
                     time_zone="Asia/Kolkata", staff_id=f"s{i}") for i in range(250)]
    config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml",
                          tables=PREMIUM_PLAN)
    assert run_once(config).code == 0
    clock.advance(60)
    for meeting_id, _ in pairs:      # one bulk edit: all in the same second
        sb.crm_move(meeting_id, sb.meeting(meeting_id)["Start_DateTime"] + dt.timedelta(days=1))
    sb.reset_counters()
    assert run_once(config).code == 0
    counts = Counter(e["form"]["booking_id"] for e in reschedules(sb))
    assert len(counts) == 250 and set(counts.values()) == {1}
    for meeting_id, booking_id in pairs:
        assert sb.appointment(booking_id)["start"] == sb.meeting(meeting_id)["Start_DateTime"]


# -- failures -----------------------------------------------------------------------------

def test_a_refused_reschedule_is_reported_once_and_a_later_edit_is_acted_on(sb, config):
    taken_by, _ = sb.book(start=future(4, hour=14), time_zone="UTC", staff_id="ana")
    meeting_id, booking_id = sb.book(start=future(4, hour=9), time_zone="UTC", staff_id="ana")
    assert run_once(config).code == 0
    sb.crm_move(meeting_id, future(4, hour=14))          # onto Ana's other appointment
    refused = run_once(config)
    assert refused.code == 1
    [line] = refused.event("action")
    assert line["outcome"] == "refused" and line["reason"]
    sb.reset_counters()
    for _ in range(2):
        assert run_once(config).code == 0
    assert sb.calls["bookings.rescheduleappointment"] == 0
    sb.crm_move(meeting_id, future(4, hour=16))
    assert run_once(config).code == 0
    assert sb.appointment(booking_id)["start"] == future(4, hour=16)


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_and_repeats_nothing(sb, config, tmp_path):
    rng = random.Random(7)
    pairs = [sb.book(start=future(10, hour=8) + dt.timedelta(hours=i), time_zone=zone)
             for i, zone in enumerate(["UTC", "Asia/Kolkata", "America/New_York", "Europe/Berlin",
                                       "Australia/Sydney", "UTC"])]
    assert run_once(config).code == 0
    expected = {}
    for round_no in range(30):
        meeting_id, booking_id = rng.choice(pairs)
        new_start = future(20 + round_no, hour=rng.randrange(6, 18))
        sb.crm_move(meeting_id, new_start)
        expected[booking_id] = new_start
        proc = subprocess.Popen([sys.executable, "-m", "bookings_sync", "--config", str(config),
                                 "--run-once", "--log-format", "json"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = run_once(config)
    assert final.code == 0, final.stderr[-2000:]
    for booking_id, start in expected.items():
        assert sb.appointment(booking_id)["start"] == start
    sent = Counter((e["form"]["booking_id"], e["form"]["start_time"]) for e in reschedules(sb))
    assert sent and max(sent.values()) == 1, "an edit was applied twice"
    with SnapshotStore.open(tmp_path / "state") as store:
        assert store.meeting_count() == len(pairs)
        assert store.pending() == {}


# -- configuration errors --------------------------------------------------------------------

@pytest.mark.parametrize("text,needle", [
    ('[zoho]\nclient_secret = "x"\nrefresh_token = "y"\n', "[zoho] client_id: missing"),
    ('[zoho]\ndata_center = "moon"\nclient_id = "a"\nclient_secret = "x"\nrefresh_token = "y"\n',
     "[zoho] data_center: unknown data center 'moon'"),
    ('[zoho]\nclient_id = "a"\nclient_secret = "x"\nrefresh_token = "y"\n[sync]\ninterval = 0\n',
     "[sync] interval: must be 1 – 86400 seconds, got 0"),
    ('[zoho]\nclient_id = "a"\nclient_secret = "x"\nrefresh_token = "y"\n'
     '[sync]\nstate_dir = "/proc/version/state"\n', "[sync] state_dir:"),
    ('[zoho\nclient_id = "a"\n', "malformed TOML"),
    ('[zoho]\nclient_id = "a"\nclient_secret = "x"\nclient_secret_file = "/etc/hostname"\n'
     'refresh_token = "y"\n', "[zoho] client_secret: set either client_secret or client_secret_file"),
])
def test_bad_configuration_is_one_line_and_exit_2(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = cli("--config", str(path), "--run-once")
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and str(path) in lines[0]
    assert "Traceback" not in result.stderr


def test_a_second_instance_exits_with_a_clear_message(sb, config, tmp_path):
    with SnapshotStore.open(tmp_path / "state"):
        result = run_once(config)
    assert result.code == 4
    assert "another bookings-sync process" in result.stderr


def test_zoho_unreachable_is_exit_3(tmp_path):
    with Sandbox() as sb:
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
    result = run_once(config)          # the sandbox is gone: connection refused
    assert result.code == 3
    assert "Traceback" not in result.stderr
