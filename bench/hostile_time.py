"""``make hostile``, class "time": clocks and zones that are not what they seem.

The sandbox's clock 40 days behind or ahead of ours (a move and a deletion still act; no
upcoming meeting is forgotten); a record or a deletion stamped 2099 (later edits still reach
Bookings, the cursor stays before 2098, a ``crm.future_timestamp`` line); moves into the
repeated hour of the next DST fall-back of New York, Berlin and Sydney — its first and second
occurrence — (a warning naming the ambiguity, shown by ``status`` too) and across a
spring-forward gap.
"""

from __future__ import annotations

import datetime as dt

import pytz

from bookings_sync.store import SnapshotStore
from hostile_harness import UTC, Case, Harness


def shifted_clock(days: int):
    def scenario(h: Harness) -> None:
        from bookings_sync.sandbox import RealClock
        clock = RealClock()
        clock.set(dt.datetime.now(UTC) + dt.timedelta(days=days))
        h.sandbox(clock=clock)
        h.step(f"(sandbox clock {days:+d} days from ours)")
        for role, at in (("A", 2), ("B", 3), ("C", 4)):
            h.book(role, at, staff=f"s{role}")
        h.config()
        h.run_once(0, label="baseline")
        h.mark_baseline()
        h.act("crm_move", h.meeting("A"), h.at(5))
        h.act("crm_delete", h.meeting("B"))
        h.expect_closed.add(h.booking("B"))
        h.run_once(0, label="moved and deleted")
        h.status()
        with SnapshotStore.open_readonly(h.state_dir) as store:
            forgotten = [r for r in ("A", "C") if store.meeting(h.meeting(r)) is None]
        h.expect(not forgotten, "converge", f"upcoming meetings forgotten: {forgotten}")
        h.clean_phase()

    return scenario


def stamped_2099(what: str):
    def scenario(h: Harness) -> None:
        h.sandbox()
        for role, at in (("A", 2), ("B", 3), ("C", 4)):
            h.book(role, at, staff=f"s{role}")
        h.config()
        h.run_once(0, label="baseline")
        h.mark_baseline()
        if what == "typed":
            h.act("crm_raw", h.meeting("A"), Modified_Time=dt.datetime(2099, 1, 1, tzinfo=UTC))
        else:
            now = h.sb.clock.now()
            h.step("sandbox clock set to 2099-01-01 for one edit, then back")
            h.sb.clock.set(dt.datetime(2099, 1, 1, tzinfo=UTC))
            if what == "deleted":
                h.act("crm_delete", h.meeting("A"))
                h.expect_closed.add(h.booking("A"))
            else:
                h.act("crm_edit", h.meeting("A"), Description="edited in 2099")
            h.sb.clock.set(now)
        first = h.run_once({0, 1}, label="a 2099 stamp")
        h.act("crm_move", h.meeting("B"), h.at(6))
        h.act("crm_delete", h.meeting("C"))
        h.expect_closed.add(h.booking("C"))
        h.run_once(0, label="later edits")
        h.expect(h.sb.appointment(h.booking("B"))["start"] == h.at(6), "converge",
                 "an edit after the 2099 stamp did not reach Bookings")
        h.expect(h.sb.appointment(h.booking("C"))["status"] != "upcoming", "converge",
                 "a deletion after the 2099 stamp did not cancel its booking")
        if what != "deleted":
            h.expect(bool(first.event("crm.future_timestamp")), "line",
                     "no crm.future_timestamp line for a record stamped 2099")
        status = h.status()
        h.expect(status is not None and (status.get("cursor") or "") < "2098", "converge",
                 f"cursor moved to {status and status.get('cursor')}")
        h.clean_phase()

    return scenario


def next_change(zone_name: str, after: dt.datetime, *, back: bool) -> dt.datetime:
    """The next instant after ``after`` at which ``zone_name``'s clocks go back (``back``) or
    forward."""
    zone = pytz.timezone(zone_name)
    for when in zone._utc_transition_times:
        when = when.replace(tzinfo=UTC)
        if when > after:
            before, later = (zone.normalize(t.astimezone(zone)).utcoffset()
                             for t in (when - dt.timedelta(hours=3), when + dt.timedelta(hours=3)))
            if (later < before) == back and later != before:
                return when
    raise ValueError(f"{zone_name}: no change of offset ahead")


def dst_scenario(zone_name: str, which: str):
    """A booking in ``zone_name`` moved in CRM to 30 minutes into the repeated hour (its first
    or second occurrence) of the next fall-back, or to 30 minutes after a spring-forward."""
    def scenario(h: Harness) -> None:
        h.sandbox()
        floor = h.sb.clock.now() + dt.timedelta(days=3)
        if which == "spring":
            target = next_change(zone_name, floor, back=False) + dt.timedelta(minutes=30)
        else:
            change = next_change(zone_name, floor, back=True)
            target = change + dt.timedelta(minutes=-30 if which == "first" else 30)
        pair = h.sb.book(start=target - dt.timedelta(days=2), time_zone=zone_name,
                         staff_id="sD")
        h.roles["D"] = pair
        h.step(f"book D at {target - dt.timedelta(days=2):%Y-%m-%dT%H:%MZ} ({zone_name}) -> "
               f"meeting {pair[0]}, booking {pair[1]}")
        h.book("E", 3, staff="sE")
        h.config()
        h.run_once(0, label="baseline")
        h.mark_baseline()
        h.act("crm_move", pair[0], target)
        run = h.run_once(0, label="moved into the changeover")
        actions = run.event("action")
        if which != "spring":
            h.expect(any("twice" in (a.get("warning") or "") for a in actions), "line",
                     "no warning naming the repeated hour")
            human = h.cli("--config", str(h.config_path), "status", expect=0, label="status")
            h.expect("twice" in human.stdout, "line", "status does not show the ambiguity")
        h.status()
        h.clean_phase()

    return scenario


def cases() -> list[Case]:
    out = [Case("time", "time/sandbox-clock-40-days-behind", shifted_clock(-40)),
           Case("time", "time/sandbox-clock-40-days-ahead", shifted_clock(40)),
           Case("time", "time/modified-2099-raw", stamped_2099("typed")),
           Case("time", "time/modified-2099-by-clock", stamped_2099("edited")),
           Case("time", "time/deleted-2099", stamped_2099("deleted"))]
    for zone in ("America/New_York", "Europe/Berlin", "Australia/Sydney"):
        for which in ("first", "second", "spring"):
            out.append(Case("time", f"time/dst-{zone}-{which}", dst_scenario(zone, which)))
    return out
