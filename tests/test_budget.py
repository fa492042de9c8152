"""Bookings calls spent like money: the daily budget holds, the soonest appointments go first,
the rest wait for Zoho's day to roll over, and Zoho saying "limit reached" is believed until the
reset. In-process cycles against the sandbox over HTTP, the sandbox's clock steered (the
budget's day is the server's), no sleeping.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from bookings_sync.config import load
from bookings_sync.engine.budget import Budget, BudgetSettings
from bookings_sync.engine.cycle import BATCH_SIZE
from bookings_sync.engine.model import Result
from bookings_sync.runtime import Runtime
from bookings_sync.sandbox import FrozenClock

from e2e import UTC, cli, reschedules, write_config

# 21:00 in London on a winter evening: three hours before Zoho's day rolls over there.
NOW = dt.datetime(2031, 1, 14, 21, 0, tzinfo=UTC)


def bookings_calls(sb) -> int:
    return sum(n for endpoint, n in sb.calls.items() if endpoint.startswith("bookings."))


@pytest.fixture
def world(make_sandbox, tmp_path):
    """200 booked meetings, a baseline, then all 200 moved in CRM; a plan of 250 calls a day."""
    clock = FrozenClock(NOW)
    sb = make_sandbox(clock=clock)
    pairs = [sb.book(start=NOW + dt.timedelta(days=2, hours=i % 48, minutes=i // 48),
                     staff_id=f"s{i}") for i in range(200)]
    path = write_config(sb, tmp_path / "state", tmp_path / "sync.toml",
                        tables='[bookings]\ndaily_call_limit = 250\ntime_zone = "Europe/London"')
    runtime = Runtime(load(path))
    runtime.cycle.clock = clock.now
    assert runtime.cycle.run().exit_code == 0
    clock.advance(60)
    for meeting_id, _ in pairs:
        sb.crm_move(meeting_id, sb.meeting(meeting_id)["Start_DateTime"] + dt.timedelta(days=7))
    clock.advance(60)
    sb.reset_counters()
    yield sb, clock, runtime, pairs, path
    runtime.close()


def test_a_day_of_250_calls_moves_the_soonest_125_and_holds_the_rest(world):
    sb, clock, runtime, pairs, path = world
    first = runtime.cycle.run()
    assert bookings_calls(sb) <= 250 and first.outcomes == {Result.DONE: 125}
    assert first.exit_code == 1 and first.budget_held == 75
    # Soonest first: the 125 appointments that were coming up first are the ones moved.
    by_time = sorted(pairs, key=lambda p: sb.meeting(p[0])["Start_DateTime"])
    moved = {e["form"]["booking_id"] for e in reschedules(sb)}
    assert moved == {booking for _, booking in by_time[:125]}
    status = cli("--config", str(path), "status")
    assert "Bookings calls today: 250 of 250, resets 00:00 Europe/London; 75 actions wait for " \
           "the reset" in status.stdout
    report = json.loads(cli("--config", str(path), "status", "--json").stdout)
    assert report["bookings_budget"]["resets_at"] == "2031-01-15T00:00:00Z"

    sb.reset_counters()
    clock.advance(3600)                                   # same Zoho day: nothing is spent
    again = runtime.cycle.run()
    assert bookings_calls(sb) == 0 and again.budget_held == 75 and again.exit_code == 1

    clock.set(dt.datetime(2031, 1, 15, 0, 1, tzinfo=UTC))   # 00:01 in London: a new day
    resumed = runtime.cycle.run()
    assert resumed.outcomes == {Result.DONE: 75} and resumed.exit_code == 0
    assert bookings_calls(sb) == 150 and resumed.bookings_calls_today == 150
    for meeting_id, booking_id in pairs:
        assert sb.appointment(booking_id)["start"] == sb.meeting(meeting_id)["Start_DateTime"]


def test_zoho_saying_the_limit_is_reached_holds_everything_until_the_reset(world):
    sb, clock, runtime, pairs, path = world
    sb.set_bookings_daily_limit(41)        # another client of the same user spent the rest
    first = runtime.cycle.run()
    assert first.outcomes == {Result.DONE: 20} and first.exit_code == 1
    assert bookings_calls(sb) == 42        # 41 answered, the 42nd refused: then no more
    # The action that met the limit waits as it was: no attempt counted against it.
    assert runtime.store.pending_count() == 180
    assert all(row.get("attempts", 0) == 0 for row in runtime.store.pending().values())
    sb.reset_counters()
    clock.advance(60)
    assert runtime.cycle.run().budget_held == 180 and bookings_calls(sb) == 0
    clock.set(dt.datetime(2031, 1, 15, 0, 1, tzinfo=UTC))
    sb.set_bookings_daily_limit(None)
    assert runtime.cycle.run().outcomes == {Result.DONE: 125}


def test_outcomes_are_committed_batch_by_batch(world):
    sb, clock, runtime, pairs, path = world
    commits, store = [], runtime.store
    original = store.commit

    def commit():
        commits.append(bookings_calls(sb))
        return original()
    store.commit = commit
    runtime.cycle.run()
    # The write-ahead commit (no Bookings call yet), then one per batch of BATCH_SIZE actions
    # (two calls each): a kill loses at most one batch of calls.
    assert commits[0] == 0
    gaps = [b - a for a, b in zip(commits, commits[1:]) if b != a]
    assert gaps and max(gaps) <= 2 * BATCH_SIZE


def test_the_budget_day_is_zohos_day_in_the_orgs_time_zone():
    settings = BudgetSettings(daily_limit=1000, time_zone="Asia/Kolkata")
    evening = dt.datetime(2031, 1, 14, 18, 20, tzinfo=UTC)          # 23:50 in Kolkata
    budget = Budget.load({}, settings, evening)
    budget.spend(820)
    assert budget.warn_now() and not budget.warn_now()              # once a day, at 80 %
    assert budget.resets_at() == dt.datetime(2031, 1, 14, 18, 30, tzinfo=UTC)
    meta = budget.to_meta()
    assert Budget.load(meta, settings, evening + dt.timedelta(minutes=5)).used == 820
    assert Budget.load(meta, settings, evening + dt.timedelta(minutes=15)).used == 0
    assert budget.describe() == "820 of 1,000, resets 00:00 Asia/Kolkata"
