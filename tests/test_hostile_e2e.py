"""The daemon against a hostile Zoho: one test per class of trouble, the console script in a
subprocess over real HTTP, asserting what a user sees — what reached Bookings, the exit code,
the one line that explains it.

Classes (issue 10): never the wrong booking · one bad record never stops the rest · bounded work
and trusted time · retries users can see · secrets and output hygiene · time-zone honesty.
The sandbox plays each fault (``sandbox/faults.py``, ``Sandbox.crm_raw`` / ``crm_clone``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat

import pytest

from bookings_sync.sandbox import FrozenClock
from bookings_sync.store import SnapshotStore

from e2e import NOW, UTC, cli, future, reschedules, run_once, write_config


@pytest.fixture
def config(sb, tmp_path):
    return write_config(sb, tmp_path / "state", tmp_path / "sync.toml")


def bookings_calls(sb) -> dict:
    return {k: v for k, v in sb.calls.items() if k.startswith("bookings.")}


def status_json(config) -> dict:
    result = cli("--config", str(config), "status", "--json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def state_texts(state_dir) -> str:
    """Every state file, as text (for "no secret anywhere"); not the token cache, token.json
    (0600), whose job is to hold the access token between runs."""
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in state_dir.iterdir()
                   if p.is_file() and p.name != "token.json")


def baseline(config, sb) -> None:
    assert run_once(config).code == 0
    sb.reset_counters()


# -- never act on the wrong booking -------------------------------------------------------------

def test_a_cloned_meeting_moves_nothing_until_only_one_keeps_the_booking_id(sb, config):
    (meeting_id, booking_id), _ = sb.book(start=future(3)), sb.book(start=future(4))
    baseline(config, sb)
    clone = sb.crm_clone(meeting_id)                         # CRM's Clone copies the booking id
    sb.crm_move(meeting_id, future(5))
    sb.crm_delete(clone)                                      # deleted in the same interval …
    first = run_once(config)
    # … the deletion of the clone resolves it: only the original is compared, never cancelled.
    assert bookings_calls(sb).get("bookings.updateappointment", 0) == 0
    assert [e["form"]["booking_id"] for e in reschedules(sb)] == [booking_id]
    assert sb.appointment(booking_id)["start"] == future(5) and first.code == 0


def test_a_conflict_is_named_every_cycle_and_listed_by_status(sb, config):
    (meeting_id, booking_id), _ = sb.book(start=future(3)), sb.book(start=future(4))
    baseline(config, sb)
    clone = sb.crm_clone(meeting_id)
    assert run_once(config).code == 0
    sb.crm_move(meeting_id, future(5))
    sb.crm_move(clone, future(6))
    moved = run_once(config)
    again = run_once(config)
    assert bookings_calls(sb) == {}                          # neither move reached Bookings
    for run in (moved, again):
        [line] = run.event("booking.conflict")
        assert line["booking_id"] == booking_id
        assert line["meetings"] == sorted([meeting_id, clone])
    assert status_json(config)["conflicts"] == {booking_id: sorted([meeting_id, clone])}
    human = cli("--config", str(config), "status").stdout
    assert "conflicts:" in human and booking_id in human and clone in human
    sb.crm_edit(clone, BookingId=None)                       # staff clear the clone's field
    resolved = run_once(config)
    assert resolved.event("booking.conflict") == []
    assert [e["form"]["booking_id"] for e in reschedules(sb)] == [booking_id]
    assert sb.appointment(booking_id)["start"] == future(5)  # the one meeting left wins


@pytest.mark.parametrize("cleared", [None, "", "   "])
def test_clearing_the_booking_id_unlinks_the_meeting(sb, config, cleared):
    meeting_id, booking_id = sb.book(start=future(3))
    baseline(config, sb)
    sb.crm_edit(meeting_id, BookingId=cleared)
    assert run_once(config).code == 0
    sb.crm_move(meeting_id, future(5))
    assert run_once(config).code == 0
    sb.crm_delete(meeting_id)
    assert run_once(config).code == 0
    assert bookings_calls(sb) == {}
    assert sb.appointment(booking_id)["status"] == "upcoming"


# -- one bad record never stops the rest --------------------------------------------------------

@pytest.mark.parametrize("field,value,needle", [
    ("Start_DateTime", "0206-03-01T10:00:00+00:00", "outside the years"),
    ("Start_DateTime", "0001-01-01T00:00:00+05:30", "outside the years"),
    ("End_DateTime", "9999-12-31T23:59:59-05:00", "outside the years"),
    ("Start_DateTime", None, "Start_DateTime is missing"),
    ("Start_DateTime", "２０２７-03-01T10:00:00+00:00", "odd characters"),
    ("BookingId", 4.5, "expected a Bookings id string"),
])
def test_one_bad_record_is_one_line_and_every_other_meeting_still_syncs(sb, config, tmp_path,
                                                                        field, value, needle):
    (bad, _), (good, good_booking) = sb.book(start=future(3)), sb.book(start=future(4))
    baseline(config, sb)
    sb.crm_raw(bad, **{field: value})
    sb.crm_move(good, future(6))
    result = run_once(config)
    assert result.code == 1 and "Traceback" not in result.stderr
    [line] = result.event("crm.bad_record")
    assert line["meeting_id"] == bad and needle in line["reason"] and field in line["reason"]
    assert sb.appointment(good_booking)["start"] == future(6)
    sb.crm_move(good, future(7))                                # and the next cycle too
    assert run_once(config).event("cycle.end")[0].get("done") == 1
    assert sb.appointment(good_booking)["start"] == future(7)
    with SnapshotStore.open_readonly(tmp_path / "state") as store:   # the state loads back
        assert store.meeting(good)["start"]


def test_non_record_items_in_a_page_are_named_and_skipped(sb, config):
    meeting_id, booking_id = sb.book(start=future(3))
    baseline(config, sb)
    sb.crm_move(meeting_id, future(5))
    sb.inject("/Events", "junk_items")
    result = run_once(config)
    assert result.code == 1 and len(result.event("crm.bad_record")) == 4
    assert sb.appointment(booking_id)["start"] == future(5)


def test_junk_in_the_deleted_list_is_named_and_the_real_deletion_still_cancels(sb, config):
    (meeting_id, booking_id), _ = sb.book(start=future(3)), sb.book(start=future(4))
    baseline(config, sb)
    sb.crm_delete(meeting_id)
    sb.inject("/Events/deleted", "junk_items", items=[None, {"id": None}, {"id": "x"}])
    result = run_once(config)
    assert result.code == 1 and len(result.event("crm.bad_record")) == 3
    assert sb.appointment(booking_id)["status"] == "cancel"


def test_a_deleted_entry_naming_a_meeting_with_a_leading_zero_cancels_nothing(sb, config):
    # "0" + an id is the same number, never the same record: Zoho's ids have no leading zero.
    meeting_id, booking_id = sb.book(start=future(3))
    baseline(config, sb)
    sb.inject("/Events/deleted", "junk_items", items=[{"id": "0" + meeting_id}])
    result = run_once(config)
    assert result.code == 1
    [line] = result.event("crm.bad_record")
    assert "no numeric id" in line["reason"]
    assert bookings_calls(sb) == {}
    assert sb.appointment(booking_id)["status"] != "cancel"


def test_a_meeting_id_sent_as_a_json_number_is_a_bad_record_not_another_meetings_key(sb, config):
    (bad, _), (other, other_booking) = sb.book(start=future(3)), sb.book(start=future(4))
    baseline(config, sb)
    sb.crm_raw(bad, id=int(other), Start_DateTime=future(6))   # Zoho's ids are strings
    result = run_once(config)
    assert result.code == 1
    [line] = result.event("crm.bad_record")
    assert "not a numeric string" in line["reason"]
    assert bookings_calls(sb) == {}                              # neither booking moved
    assert sb.appointment(other_booking)["start"] == future(4)


# -- bounded work, trusted time -----------------------------------------------------------------

def test_a_page_repeated_forever_stops_the_walk_with_exit_3(sb, config):
    sb.seed(3)
    baseline(config, sb)
    sb.inject("/Events", "page_repeat", count=None)
    result = run_once(config)
    assert result.code == 3 and "Traceback" not in result.stderr
    [error] = result.event("cycle.zoho_error")
    assert "repeated a page" in error["error"]
    assert sb.calls["crm.list"] <= 3


@pytest.mark.parametrize("path", ["/Events", "/Events/deleted"])   # the list comes first
def test_an_empty_page_that_claims_more_records_stops_the_run_with_exit_3(sb, config, path):
    # Stopping there would take a partial list for the whole one (a deletion list cut short
    # would lose cancels); the cursors stay, so the next clean run reads it all.
    meeting_id, booking_id = sb.book(start=future(3))
    baseline(config, sb)
    sb.crm_delete(meeting_id)
    sb.inject(path, "page_short", keep=0)
    result = run_once(config)
    assert result.code == 3 and "Traceback" not in result.stderr
    [error] = result.event("cycle.zoho_error")
    assert "empty page that claims more records" in error["error"]
    assert run_once(config).code == 0
    assert sb.appointment(booking_id)["status"] == "cancel"


def test_a_trickling_reply_cannot_hold_a_run(sb, tmp_path):
    meeting_id, booking_id = sb.book(start=future(3))
    config = tmp_path / "sync.toml"
    config.write_text(sb.config_toml(tmp_path / "state", interval=1).replace(
        "[crm]", "timeout = 2\n\n[crm]"))
    baseline(config, sb)
    sb.crm_move(meeting_id, future(5))
    sb.inject("getappointment", "trickle", interval=0.2)
    result = run_once(config)
    [end] = result.event("cycle.end")
    assert result.code == 3 and end["duration_ms"] < 6000 and end["pending"] == 1
    [action] = result.event("action")
    assert action["outcome"] == "retry" and "within 2 s" in action["reason"]
    assert run_once(config).code == 0 and sb.appointment(booking_id)["start"] == future(5)


def test_an_oversized_reply_is_refused_not_read_into_memory(sb, config):
    meeting_id, booking_id = sb.book(start=future(3))
    baseline(config, sb)
    sb.crm_move(meeting_id, future(5))
    sb.inject("getappointment", "oversize", size=200_000_000, content_length=False)
    result = run_once(config)
    [end], [action] = result.event("cycle.end"), result.event("action")
    assert result.code == 3 and action["outcome"] == "retry" and "refused" in action["reason"]
    assert end["peak_rss_mb"] < 150                            # 200 MB never held
    assert run_once(config).code == 0 and sb.appointment(booking_id)["start"] == future(5)


def test_a_record_stamped_2099_does_not_hide_later_edits(sb, config, tmp_path):
    (stamped, _), (other, other_booking) = sb.book(start=future(3)), sb.book(start=future(4))
    baseline(config, sb)
    sb.crm_raw(stamped, Modified_Time=dt.datetime(2099, 1, 1, tzinfo=UTC))
    first = run_once(config)
    assert first.code == 0 and first.event("crm.future_timestamp")
    cursor = status_json(config)["cursor"]
    assert cursor < "2098"                                     # never past the server's clock
    sb.crm_move(other, future(6))
    assert run_once(config).code == 0
    assert sb.appointment(other_booking)["start"] == future(6)


def test_a_local_clock_40_days_ahead_forgets_no_upcoming_meeting(make_sandbox, tmp_path):
    server_now = NOW - dt.timedelta(days=40)                    # ours is 40 days ahead
    sb = make_sandbox(clock=FrozenClock(server_now))
    pairs = [sb.book(start=server_now + dt.timedelta(days=2, hours=i)) for i in range(3)]
    config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
    assert run_once(config).code == 0                            # baseline, then the daily prune
    sb.clock.advance(60)
    assert status_json(config)["meetings_tracked"] == 3
    meeting_id, booking_id = pairs[0]
    sb.crm_move(meeting_id, server_now + dt.timedelta(days=3))
    assert run_once(config).code == 0
    assert sb.appointment(booking_id)["start"] == server_now + dt.timedelta(days=3)


# -- retries that users can see ------------------------------------------------------------------

# (429 / 5xx are retried by the client first, with real waits: their counts and waits are in
# test_clients.py, their result — retry, never a failure — in test_engine.py.)
@pytest.mark.parametrize("kind,params", [
    ("html", {}), ("text", {}), ("truncated", {}), ("no_envelope", {}), ("empty", {}),
])
def test_an_unreadable_bookings_reply_is_retried_never_a_failure(sb, config, kind, params):
    meeting_id, booking_id = sb.book(start=future(3))
    baseline(config, sb)
    sb.crm_move(meeting_id, future(5))
    sb.inject("getappointment", kind, count=5, **params)      # outlasts the client's re-sends
    first = run_once(config)
    [end] = first.event("cycle.end")
    assert first.code == 3 and end["pending"] == 1 and "next_try" in end
    assert status_json(config)["failures"] == []
    sb.clear_faults()
    retried = run_once(config)                                 # right after: retried at once
    assert retried.code == 0 and sb.appointment(booking_id)["start"] == future(5)
    assert retried.event("cycle.end")[0]["pending"] == 0


def test_a_run_that_leaves_actions_waiting_never_exits_0(sb, config):
    meeting_id, _ = sb.book(start=future(3))
    baseline(config, sb)
    sb.crm_move(meeting_id, future(5))
    sb.inject("rescheduleappointment", "500", count=None)
    assert run_once(config).code == 3                           # Zoho failing: 3
    second = run_once(config)                                   # backing off, nothing sent: 1
    assert second.code in (1, 3) and second.event("cycle.end")[0]["pending"] == 1


# -- secrets and output hygiene ------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/oauth/v2/token", "/crm/v8/Events", "getappointment"])
def test_no_redirect_is_followed_and_no_secret_leaves(sb, config, path):
    meeting_id, _ = sb.book(start=future(3))
    baseline(config, sb)
    sb.crm_move(meeting_id, future(5))
    sb.expire_tokens()
    sb.inject(path, "redirect", status=307, count=None)
    result = run_once(config)
    assert result.code == 3 and "Traceback" not in result.stderr
    assert "not followed" in result.stderr and "127.0.0.1" in result.stderr
    assert sb.catcher.requests == []                           # nothing reached the other host


@pytest.mark.parametrize("path", ["/oauth/", "/crm/v8/Events", "getappointment"])
def test_a_secret_echoed_by_zoho_is_masked_everywhere(sb, config, tmp_path, path):
    meeting_id, _ = sb.book(start=future(3))
    baseline(config, sb)
    sb.crm_move(meeting_id, future(5))
    sb.expire_tokens()
    sb.inject(path, "echo", count=None)
    result = run_once(config)
    outputs = [result.stdout, result.stderr, state_texts(tmp_path / "state"),
               cli("--config", str(config), "status").stdout,
               cli("--config", str(config), "status", "--json").stdout]
    secrets = [sb.credentials["client_secret"], sb.credentials["refresh_token"],
               *sb.world.tokens]
    assert result.code in (1, 3)
    if path == "getappointment":               # Bookings' echo is kept as the refusal's reason
        assert "***" in result.stderr and "***" in outputs[3]
    for text in outputs:
        for secret in secrets:
            assert secret not in text


def test_state_files_are_private_outside_systemd(sb, config, tmp_path):
    sb.seed(2)
    os.umask(0o022)
    assert run_once(config).code == 0
    state = tmp_path / "state"
    assert stat.S_IMODE(state.stat().st_mode) & 0o077 == 0 or all(
        stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in state.iterdir() if p.is_file())
    for path in state.iterdir():
        if path.is_file() and not path.name.startswith("retry-request"):
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path.name


def test_control_characters_from_zoho_reach_no_terminal_raw(sb, config):
    meeting_id, _ = sb.book(start=future(3))
    baseline(config, sb)
    sb.crm_move(meeting_id, future(5))
    sb.inject("rescheduleappointment", "refuse", message="\x1b[2J\x07slot\r\ntaken")
    result = cli("--config", str(config), "--run-once", "--log-format", "console")
    human = cli("--config", str(config), "status")
    for text in (result.stderr, human.stdout):
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "slot" in human.stdout and "taken" in human.stdout


# -- time-zone honesty ----------------------------------------------------------------------------

def test_a_move_into_a_repeated_hour_warns_which_instant_bookings_holds(sb, config):
    zone_start = dt.datetime(2027, 11, 5, 14, tzinfo=UTC)
    meeting_id, booking_id = sb.book(start=zone_start, time_zone="America/New_York")
    baseline(config, sb)
    second_0130 = dt.datetime(2027, 11, 7, 6, 30, tzinfo=UTC)   # 01:30 EST, after the fall-back
    sb.crm_move(meeting_id, second_0130)
    result = run_once(config)
    [action] = result.event("action")
    assert [e["form"]["start_time"] for e in reschedules(sb)] == ["07-Nov-2027 01:30:00"]
    assert action["level"] == "warning" and "occurs twice" in action["warning"]
    assert "2027-11-07 05:30Z" in action["warning"]              # what Bookings will hold
    assert "occurs twice" in cli("--config", str(config), "status").stdout
