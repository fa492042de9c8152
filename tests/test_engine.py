"""The engine in-process, in milliseconds: the executor's error → result table and its loop guard
against in-memory Bookings/CRM, the backoff, and whole cycles (commit order, retry bookkeeping,
auth loss) against the in-process sandbox over real HTTP with a steered clock.

The end-to-end files run the console script in a subprocess; these reach the same code directly,
so a failure names the function, not an exit code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from bookings_sync.config import load
from bookings_sync.engine.executor import Executor, RunAborted, result_for
from bookings_sync.engine.model import Action, Kind, OnRefused, Result
from bookings_sync.engine.retry import BACKOFF_BASE_SECONDS, after_transient_failure, backoff_seconds
from bookings_sync.mailbox import post_retry_request
from bookings_sync.runtime import Runtime
from bookings_sync.sandbox import FrozenClock
from bookings_sync.zoho.errors import (BookingsRefused, ZohoApiError, ZohoAuthError,
                                       ZohoPayloadError, ZohoRedirected, ZohoUnreachable,
                                       ZohoUnreadable)

from e2e import UTC, write_config
from memory_zoho import MemoryBookings, MemoryCrm

T0 = dt.datetime(2031, 3, 10, 9, 0, tzinfo=UTC)
NOW = dt.datetime(2031, 3, 3, 9, 0, tzinfo=UTC)


def action(kind=Kind.RESCHEDULE, start=T0 + dt.timedelta(hours=2), **kw) -> Action:
    fields = dict(meeting_id="1001", booking_id="#AN-1", kind=kind, start=start,
                  end=start + dt.timedelta(minutes=30), old_start=T0, modified=NOW,
                  planned_at=NOW)
    return Action(**{**fields, **kw})


@pytest.fixture
def bookings():
    memory = MemoryBookings()
    memory.add("#AN-1", T0, "Asia/Kolkata")
    return memory


# -- the executor's result table -------------------------------------------------------------

def test_a_move_is_sent_as_wall_time_in_the_appointments_zone(bookings):
    outcome = Executor(bookings, MemoryCrm()).run_one(action())
    assert outcome.result is Result.DONE
    assert bookings.appointments["#AN-1"].start_text == "10-Mar-2031 16:30:00"   # 11:00 UTC
    assert outcome.bookings_start == "10-Mar-2031 14:30:00" and outcome.time_zone == "Asia/Kolkata"
    assert [v for v, _ in bookings.calls] == ["get", "reschedule"]


def test_bookings_already_there_is_in_sync_without_a_write(bookings):
    outcome = Executor(bookings, MemoryCrm()).run_one(action(start=T0))
    assert outcome.result is Result.IN_SYNC and bookings.count("reschedule") == 0


@pytest.mark.parametrize("kind,status,result", [
    (Kind.RESCHEDULE, "cancel", Result.SKIPPED),
    (Kind.RESCHEDULE, "completed", Result.SKIPPED),
    (Kind.CANCEL, "upcoming", Result.DONE),
    (Kind.CANCEL, "cancel", Result.IN_SYNC),
    (Kind.CANCEL, "CANCELLED", Result.IN_SYNC),
    (Kind.COMPLETED, "cancel", Result.SKIPPED),
    (Kind.NOSHOW, "no_show", Result.IN_SYNC),
    (Kind.NOSHOW, "upcoming", Result.DONE),
])
def test_status_actions_and_closed_appointments(bookings, kind, status, result):
    bookings.add("#AN-1", T0, "UTC", status=status)
    outcome = Executor(bookings, MemoryCrm()).run_one(action(kind=kind))
    assert outcome.result is result
    assert bookings.count("update") == (1 if result is Result.DONE and kind.closes else 0)
    if result is Result.DONE and kind.closes:
        assert bookings.appointments["#AN-1"].status == kind.value


def test_a_refusal_is_kept_with_bookings_reason_and_crm_left_alone(bookings):
    bookings.taken.add("10-Mar-2031 16:30:00")
    crm = MemoryCrm()
    outcome = Executor(bookings, crm).run_one(action())
    assert (outcome.result, outcome.reason) == (Result.REFUSED, "Slot not available")
    assert crm.updates == [] and outcome.reverted_to is None


def test_revert_puts_the_crm_meeting_back_to_bookings_time(bookings):
    bookings.taken.add("10-Mar-2031 16:30:00")
    crm = MemoryCrm({"1001": NOW})                 # the version the action was planned from
    outcome = Executor(bookings, crm, on_refused=OnRefused.REVERT).run_one(action())
    assert outcome.result is Result.REFUSED and outcome.reverted_to == T0
    assert outcome.reverted_end == T0 + dt.timedelta(minutes=30)
    assert crm.updates == [("1001", {"Start_DateTime": "2031-03-10T09:00:00+00:00",
                                     "End_DateTime": "2031-03-10T09:30:00+00:00"})]


@pytest.mark.parametrize("current", [NOW + dt.timedelta(seconds=1), None])
def test_revert_never_overwrites_a_newer_crm_edit(bookings, current):
    bookings.taken.add("10-Mar-2031 16:30:00")
    crm = MemoryCrm({"1001": current} if current else {})     # edited again, or deleted
    outcome = Executor(bookings, crm, on_refused=OnRefused.REVERT).run_one(action())
    assert outcome.result is Result.REFUSED and outcome.reverted_to is None
    assert crm.updates == [] and crm.count("get_meeting") == 1
    assert "edited again" in outcome.reason


def test_a_revert_that_fails_says_so_in_the_reason(bookings):
    bookings.taken.add("10-Mar-2031 16:30:00")
    crm = MemoryCrm({"1001": NOW})
    crm.fail_next("update_meeting", ZohoApiError("no permission", code="NO_PERMISSION"))
    outcome = Executor(bookings, crm, on_refused=OnRefused.REVERT).run_one(action())
    assert outcome.result is Result.REFUSED and outcome.reverted_to is None
    assert "revert in CRM failed" in outcome.reason and "no permission" in outcome.reason


@pytest.mark.parametrize("error,result", [
    (BookingsRefused("Invalid booking id"), Result.REFUSED),
    (ZohoUnreachable("connection dropped"), Result.RETRY),
    (ZohoUnreachable("[TOO_MANY_REQUESTS HTTP 429] Too many requests", status_code=429),
     Result.RETRY),
    (ZohoUnreadable("reply is not JSON"), Result.RETRY),
    (ZohoUnreadable("HTTP 502 Bad Gateway"), Result.RETRY),
    (ZohoPayloadError("reply has no 'start_time'"), Result.FAILED),
    (ZohoApiError("invalid data", code="INVALID_DATA"), Result.FAILED),
])
def test_each_error_of_the_read_becomes_its_result(bookings, error, result):
    bookings.fail_next("get", error)
    outcome = Executor(bookings, MemoryCrm()).run_one(action())
    assert outcome.result is result and result_for(error) is result
    assert bookings.count("reschedule") == 0


def test_an_unusable_time_zone_is_a_failure_not_a_crash(bookings):
    bookings.add("#AN-1", T0, "UTC")
    bookings.appointments["#AN-1"] = dataclasses.replace(bookings.appointments["#AN-1"],
                                                         time_zone="Mars/Olympus")
    outcome = Executor(bookings, MemoryCrm()).run_one(action())
    assert outcome.result is Result.FAILED and "Mars/Olympus" in outcome.reason


@pytest.mark.parametrize("error", [
    ZohoAuthError("token refresh refused: invalid_code", code="invalid_code"),
    ZohoRedirected("HTTP 307, a redirect to evil.example; not followed", code="REDIRECT"),
])
def test_zoho_refusing_the_connection_mid_run_stops_and_hands_back_what_was_done(bookings,
                                                                                 error):
    bookings.add("#AN-2", T0, "UTC")
    bookings.add("#AN-3", T0, "UTC")
    bookings.fail_next("get", error, key="#AN-2")
    actions = [action(), action(meeting_id="1002", booking_id="#AN-2"),
               action(meeting_id="1003", booking_id="#AN-3")]
    with pytest.raises(RunAborted) as lost:
        Executor(bookings, MemoryCrm()).run(actions)
    assert [o.action.meeting_id for o in lost.value.outcomes] == ["1001"]
    assert "#AN-3" not in {key for _, key in bookings.calls}


# -- backoff ---------------------------------------------------------------------------------

def test_backoff_retries_at_the_next_cycle_then_doubles_up_to_the_cap():
    waits = [backoff_seconds(n, cap=600) for n in range(1, 9)]
    assert waits == [0, 30, 60, 120, 240, 480, 600, 600]
    assert backoff_seconds(2, cap=600) == BACKOFF_BASE_SECONDS


def test_a_transient_failure_counts_an_attempt_and_sets_the_next_try():
    once = after_transient_failure(action(), "connection dropped", NOW, cap=3600)
    twice = after_transient_failure(once, "HTTP 503", NOW, cap=3600)
    assert (once.attempts, once.not_before) == (1, NOW)          # due at the next cycle
    assert once.due(NOW + dt.timedelta(seconds=1))
    assert (twice.attempts, twice.not_before, twice.last_error) == (
        2, NOW + dt.timedelta(seconds=30), "HTTP 503")
    assert not twice.due(NOW + dt.timedelta(seconds=29)) and twice.due(
        NOW + dt.timedelta(seconds=30))
    assert Action.from_row(twice.to_row()) == twice


# -- whole cycles, in-process, against the sandbox ---------------------------------------------

@pytest.fixture
def world(make_sandbox, tmp_path):
    """A frozen-clock sandbox with two booked meetings, a baseline recorded, and a Runtime whose
    cycle reads the same steered clock."""
    clock = FrozenClock(NOW)
    sb = make_sandbox(clock=clock)
    pairs = [sb.book(start=T0 + dt.timedelta(hours=i), time_zone="UTC") for i in range(2)]
    config = load(write_config(sb, tmp_path / "state", tmp_path / "sync.toml"))
    runtime = Runtime(config)
    runtime.cycle.clock = clock.now
    clock.advance(60)
    assert runtime.cycle.run().exit_code == 0          # the baseline
    yield sb, clock, runtime, pairs
    runtime.close()


def step(clock, runtime, seconds=10):
    clock.advance(seconds)
    return runtime.cycle.run()


def test_the_plan_is_committed_before_acting_and_outcomes_after(world):
    sb, clock, runtime, pairs = world
    meeting_id, booking_id = pairs[0]
    sb.crm_move(meeting_id, T0 + dt.timedelta(days=1))
    store = runtime.store
    commits = []
    original_commit = store.commit

    def commit():
        commits.append({"pending": set(store.pending()), "bookings": sb.calls[
            "bookings.rescheduleappointment"]})
        return original_commit()
    store.commit = commit
    report = step(clock, runtime)
    assert report.exit_code == 0 and report.outcomes == {Result.DONE: 1}
    # Commit 1 holds the pending action before any Bookings write; commit 2 clears it after.
    assert commits == [{"pending": {meeting_id}, "bookings": 0},
                       {"pending": set(), "bookings": 1}]


def test_a_transient_failure_waits_out_its_backoff_then_succeeds(world):
    sb, clock, runtime, pairs = world
    meeting_id, booking_id = pairs[0]
    sb.crm_move(meeting_id, T0 + dt.timedelta(days=1))
    sb.inject("rescheduleappointment", "500", count=2)
    first = step(clock, runtime)
    assert first.exit_code == 3 and first.outcomes == {Result.RETRY: 1}
    [row] = runtime.store.pending().values()
    assert row["attempts"] == 1 and row["not_before"] == "2031-03-03T09:01:10Z"   # now: next cycle
    second = step(clock, runtime, 10)                               # the next cycle tries again
    assert second.outcomes == {Result.RETRY: 1}
    [row] = runtime.store.pending().values()
    assert row["attempts"] == 2 and row["not_before"] == "2031-03-03T09:01:50Z"   # +30 s
    sb.reset_counters()
    assert step(clock, runtime, 10).outcomes == {}                 # not due yet: no call
    assert sum(v for k, v in sb.calls.items() if k.startswith("bookings.")) == 0
    done = step(clock, runtime, 30)
    assert done.exit_code == 0 and done.outcomes == {Result.DONE: 1}
    assert runtime.store.pending() == {} and sb.appointment(booking_id)["start"] == (
        T0 + dt.timedelta(days=1))


def test_a_refusal_is_recorded_and_a_retry_request_runs_it_again(world):
    sb, clock, runtime, pairs = world
    (meeting_id, booking_id), (_, other) = pairs
    taken = sb.appointment(other)["start"]
    sb.crm_move(meeting_id, taken)                                  # the slot is taken
    refused = step(clock, runtime)
    assert refused.exit_code == 1 and refused.outcomes == {Result.REFUSED: 1}
    assert set(runtime.store.failures()) == {meeting_id}
    sb.bookings_cancel(other)                                       # the slot frees up
    post_retry_request(runtime.store.state_dir, [meeting_id])
    again = step(clock, runtime)
    assert again.outcomes == {Result.DONE: 1} and runtime.store.failures() == {}
    assert sb.appointment(booking_id)["start"] == taken


class AuthLostAfter:
    """The real Bookings client, until Accounts refuses: the ``n``-th read fails on auth."""

    def __init__(self, inner, n: int):
        self.inner, self.n, self.reads = inner, n, 0

    def get(self, booking_id):
        self.reads += 1
        if self.reads == self.n:
            raise ZohoAuthError("token refresh refused: invalid_code", code="invalid_code")
        return self.inner.get(booking_id)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_auth_lost_keeps_the_rest_pending_and_exits_3(world):
    sb, clock, runtime, pairs = world
    for hours, (meeting_id, _) in enumerate(pairs):
        sb.crm_move(meeting_id, T0 + dt.timedelta(days=2, hours=hours))
    runtime.executor.bookings = AuthLostAfter(runtime.zoho.bookings, n=2)
    report = step(clock, runtime)
    assert report.exit_code == 3 and "invalid_code" in report.error
    assert len(runtime.store.pending()) == 1                       # the second waits
    assert report.outcomes == {Result.DONE: 1}     # the first ran and was committed
    assert runtime.store.meeting(pairs[0][0])["outcome"] == "done"
