"""Property: whatever CRM records and Bookings replies Zoho sends, a real cycle (the Runtime's
Cycle, its real clients, over HTTP to the in-process sandbox) never raises, never writes to a
booking whose id more than one readable meeting carries, and always leaves a state that loads.

Hypothesis draws a few meetings and, per cycle, CRM edits (moves, clones, relinks, cleared ids,
deletions, raw hostile field values, junk list items) and Bookings faults (HTML, text, truncated
or empty bodies, 5xx, 429, refusals with odd text). "Readable" is judged with the daemon's own
record reader: a meeting it cannot read cannot move anything, so a clone whose date is garbage
does not make the original ambiguous — but a readable clone always does.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from bookings_sync.config import load
from bookings_sync.engine.meetings import MeetingFields, RecordError
from bookings_sync.engine.model import Action, SeenMeeting
from bookings_sync.runtime import Runtime
from bookings_sync.sandbox import FrozenClock, Sandbox
from bookings_sync.sandbox import wire
from bookings_sync.store import SnapshotStore

from e2e import UTC, write_config

NOW = dt.datetime(2031, 3, 3, 9, 0, tzinfo=UTC)
FIELDS = MeetingFields()
WRITES = ("bookings.rescheduleappointment", "bookings.updateappointment")

HOSTILE_VALUES = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(),
    st.text(max_size=12), st.lists(st.integers(), max_size=2),
    st.sampled_from(["0206-03-01T10:00:00+00:00", "9999-12-31T23:59:59-05:00",
                     "２０２７-03-01T10:00:00+00:00", "2031-03-09T10:00:00", "   ",
                     "2031-03-09T10:00:00+00:00", "#AN-00001", "\x1b[2J\x07"]))
EDIT = st.one_of(
    st.tuples(st.just("move"), st.integers(0, 5), st.integers(-48, 96)),
    st.tuples(st.just("clone"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("relink"), st.integers(0, 5), st.integers(0, 5)),
    st.tuples(st.just("clear"), st.integers(0, 5), st.sampled_from([0, 1])),
    st.tuples(st.just("delete"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("raw"), st.integers(0, 5),
              st.tuples(st.sampled_from(["Start_DateTime", "End_DateTime", "Modified_Time",
                                         "BookingId", "id"]), HOSTILE_VALUES)),
)
FAULT = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(["getappointment", "rescheduleappointment",
                               "updateappointment"]),
              st.sampled_from(["html", "text", "truncated", "no_envelope", "empty", "500",
                               "429", "drop"]), st.just({})),
    st.tuples(st.just("rescheduleappointment"), st.just("refuse"),
              st.fixed_dictionaries({"message": st.text(max_size=20)})),
    st.tuples(st.just("/Events"), st.just("junk_items"), st.just({})),
)
CYCLES = st.lists(st.tuples(st.lists(EDIT, max_size=4), FAULT), min_size=1, max_size=3)


def readable_links(sb: Sandbox) -> Counter:
    """booking id → how many meetings CRM would show the daemon as readable and linked."""
    links = Counter()
    with sb.world.lock:
        records = [wire.render_record(r, None, "UTC") for r in sb.world.meetings.values()]
    for raw in records:
        try:
            record = FIELDS.parse(raw)
        except RecordError:
            continue
        if record.booking_id:
            links[record.booking_id] += 1
    return links


def apply(sb: Sandbox, edit, meetings: list[str], bookings: list[str]) -> None:
    kind, who, arg = edit
    live = [m for m in meetings if m in sb.world.meetings]
    if not live:
        return
    meeting_id = live[who % len(live)]
    if kind == "move":
        sb.crm_move(meeting_id, NOW + dt.timedelta(days=3, hours=arg))
    elif kind == "clone":
        meetings.append(sb.crm_clone(meeting_id))
    elif kind == "relink":
        sb.crm_edit(meeting_id, BookingId=bookings[arg % len(bookings)])
    elif kind == "clear":
        sb.crm_edit(meeting_id, BookingId=[None, "   "][arg])
    elif kind == "delete":
        sb.crm_delete(meeting_id)
    else:
        field, value = arg
        sb.crm_raw(meeting_id, **{field: value})


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(CYCLES)
def test_no_reply_raises_acts_on_an_ambiguous_link_or_breaks_the_state(cycles):
    clock = FrozenClock(NOW)
    with Sandbox(clock=clock) as sb, tempfile.TemporaryDirectory() as tmp:
        pairs = [sb.book(start=NOW + dt.timedelta(days=2, hours=i), staff_id=f"s{i}")
                 for i in range(3)]
        meetings, bookings = [m for m, _ in pairs], [b for _, b in pairs]
        state = Path(tmp) / "state"
        config = load(write_config(sb, state, Path(tmp) / "sync.toml"))
        with Runtime(config) as runtime:
            runtime.cycle.clock = clock.now
            clock.advance(30)
            runtime.cycle.run()                                       # the baseline
            for edits, fault in cycles:
                clock.advance(30)
                for edit in edits:
                    apply(sb, edit, meetings, bookings)
                if fault:
                    path, kind, params = fault
                    sb.inject(path, kind, count=2, **params)
                clock.advance(30)
                links = readable_links(sb)
                sb.reset_counters()
                report = runtime.cycle.run()                          # never raises
                sb.clear_faults()
                assert report.exit_code in (0, 1, 3)
                for entry in sb.request_log:
                    if entry["endpoint"] in WRITES:
                        booking_id = entry["form"].get("booking_id")
                        assert links[booking_id] <= 1, (booking_id, links)
        with SnapshotStore.open_readonly(state) as store:              # the state loads back
            for row in store.meetings():
                SeenMeeting.from_row(row)
            for row in store.pending().values():
                Action.from_row(row)
