"""The pure planner: snapshot + records → plan. No I/O, so these run in microseconds."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from bookings_sync.engine import planner
from bookings_sync.engine.meetings import MeetingFields, RecordError
from bookings_sync.engine.model import DeletedMeeting, Kind, MeetingRecord, OnDelete
from bookings_sync.engine.planner import PlannerSettings, plan

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SETTINGS = PlannerSettings(status_map={"Cancelled": Kind.CANCEL, "Completed": Kind.COMPLETED,
                                       "No Show": Kind.NOSHOW})


class View:
    """An in-memory snapshot with the store's read API (a real implementation, not a mock)."""

    def __init__(self, failures=()):
        self.meetings = {}
        self._pending = {}
        self.failures = set(failures)

    def meeting(self, meeting_id):
        return self.meetings.get(meeting_id)

    def pending(self):
        return dict(self._pending)

    def has_failure(self, meeting_id):
        return meeting_id in self.failures

    def meetings_linked_to(self, booking_id):
        return {m.id for m in self.meetings.values()
                if m.booking_id == booking_id and not m.deleted}

    def apply(self, result: planner.Plan):
        for row in result.meetings:
            self.meetings[row.id] = row
        for action in result.actions:
            self._pending[action.meeting_id] = action
        for meeting_id in result.drop_pending:
            self._pending.pop(meeting_id, None)


def rec(mid="1001", start=T0, modified=NOW, created=None, status=None, booking="same"):
    """A meeting record; its booking is #AN-1 for meeting 1001 and one of its own for every
    other meeting (a clone passes ``booking="#AN-1"``)."""
    if booking == "same":
        booking = "#AN-1" if mid == "1001" else f"#AN-{mid}"
    return MeetingRecord(id=mid, booking_id=booking, start=start,
                         end=start + dt.timedelta(minutes=30),
                         created=created or modified - dt.timedelta(days=1), modified=modified,
                         status=status)


def run(view, records, *, baseline=False, deleted=(), **kw):
    result = plan(view, records, settings=kw.pop("settings", SETTINGS), baseline=baseline,
                  now=NOW, cursor=None, deleted=deleted, **kw)
    view.apply(result)
    return result


def test_baseline_records_everything_and_acts_on_nothing():
    view = View()
    result = run(view, [rec("1"), rec("2", status="Cancelled")], baseline=True)
    assert len(result.meetings) == 2 and result.actions == []
    assert result.cursor == NOW


def test_moved_meeting_is_rescheduled_to_the_new_instant():
    view = View()
    run(view, [rec()], baseline=True)
    moved = T0 + dt.timedelta(hours=2)
    result = run(view, [rec(start=moved, modified=NOW + dt.timedelta(minutes=1))])
    [action] = result.actions
    assert action.kind is Kind.RESCHEDULE and action.start == moved
    assert action.old_start == T0


def test_same_instant_in_another_offset_is_not_a_change():
    view = View()
    run(view, [rec()], baseline=True)
    berlin = T0.astimezone(dt.timezone(dt.timedelta(hours=1)))
    result = run(view, [rec(start=berlin, modified=NOW + dt.timedelta(minutes=1))])
    assert result.actions == []


def test_overlap_window_repeats_cost_nothing():
    view = View()
    run(view, [rec()], baseline=True)
    result = run(view, [rec()])            # the same record again (overlap)
    assert result.meetings == [] and result.actions == []


def test_two_edits_before_the_action_runs_become_one_action_to_the_latest_time():
    view = View()
    run(view, [rec()], baseline=True)
    first, second = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=3)
    run(view, [rec(start=first, modified=NOW + dt.timedelta(minutes=1))])
    result = run(view, [rec(start=second, modified=NOW + dt.timedelta(minutes=2))])
    assert [a.start for a in view.pending().values()] == [second]
    assert len(result.actions) == 1


def test_two_versions_in_one_fetch_keep_the_latest():
    view = View()
    run(view, [rec()], baseline=True)
    a, b = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2)
    result = run(view, [rec(start=b, modified=NOW + dt.timedelta(minutes=2)),
                        rec(start=a, modified=NOW + dt.timedelta(minutes=1))])
    assert [x.start for x in result.actions] == [b]


def test_new_meeting_untouched_since_creation_costs_no_bookings_call():
    view = View()
    run(view, [rec("1")], baseline=True)
    fresh = rec("2", created=NOW, modified=NOW + dt.timedelta(seconds=3))
    edited = rec("3", created=NOW - dt.timedelta(hours=1), modified=NOW)
    result = run(view, [fresh, edited])
    assert [a.meeting_id for a in result.actions] == ["3"]


def test_move_then_cancel_in_one_interval_is_only_a_cancel():
    view = View()
    run(view, [rec()], baseline=True)
    result = run(view, [rec(start=T0 + dt.timedelta(hours=1), status="Cancelled",
                            modified=NOW + dt.timedelta(minutes=1))])
    assert [a.kind for a in result.actions] == [Kind.CANCEL]


def test_cancel_then_uncancel_before_it_ran_is_nothing():
    view = View()
    run(view, [rec(status="Scheduled")], baseline=True)
    run(view, [rec(status="Cancelled", modified=NOW + dt.timedelta(minutes=1))])
    result = run(view, [rec(status="Scheduled", modified=NOW + dt.timedelta(minutes=2))])
    assert result.actions == [] and result.drop_pending == ["1001"]
    assert view.pending() == {}


def test_same_status_seen_again_is_no_action():
    view = View()
    run(view, [rec(status="Scheduled")], baseline=True)
    first = run(view, [rec(status="Completed", modified=NOW + dt.timedelta(minutes=1))])
    again = run(view, [rec(status="Completed", modified=NOW + dt.timedelta(minutes=2))])
    assert [a.kind for a in first.actions] == [Kind.COMPLETED] and again.actions == []


def test_deleted_meeting_is_cancelled_or_ignored_by_config():
    deleted = [DeletedMeeting("1001", NOW)]
    view = View()
    run(view, [rec()], baseline=True)
    assert [a.kind for a in run(view, [], deleted=deleted).actions] == [Kind.CANCEL]
    assert run(view, [], deleted=deleted).actions == []      # seen again: already handled
    ignore = View()
    run(ignore, [rec()], baseline=True)
    quiet = PlannerSettings(on_delete=OnDelete.IGNORE)
    assert run(ignore, [], deleted=deleted, settings=quiet).actions == []


def test_mass_cancel_is_held_not_sent():
    view = View()
    run(view, [rec(str(i)) for i in range(1, 21)], baseline=True)
    deleted = [DeletedMeeting(str(i), NOW) for i in range(1, 17)]
    result = run(view, [], deleted=deleted, upcoming_count=lambda: 20)
    assert result.held == 16 and all(a.held for a in result.actions)
    assert any(n.event == "guard.mass_cancel" for n in result.notes)
    allowed = View()
    run(allowed, [rec(str(i)) for i in range(1, 21)], baseline=True)
    result = run(allowed, [], deleted=deleted, upcoming_count=lambda: 20, allow_mass_cancel=True)
    assert result.held == 0 and len(result.actions) == 16


def test_a_few_cancels_in_a_small_shop_pass_the_floor():
    view = View()
    run(view, [rec(str(i)) for i in range(1, 5)], baseline=True)
    deleted = [DeletedMeeting(str(i), NOW) for i in range(1, 4)]
    result = run(view, [], deleted=deleted, upcoming_count=lambda: 4)
    assert result.held == 0 and len(result.actions) == 3


def test_new_action_clears_an_old_refusal():
    view = View(failures=["1001"])
    run(view, [rec()], baseline=True)
    result = run(view, [rec(start=T0 + dt.timedelta(hours=5), modified=NOW + dt.timedelta(minutes=1))])
    assert result.clear_failures == ["1001"]


def test_normalize_reads_offsets_and_reports_unlinked_meetings():
    raw = {"id": "4876876000000412345", "Start_DateTime": "2026-03-08T10:00:00+05:30",
           "End_DateTime": "2026-03-08T10:30:00+05:30", "Modified_Time": "2026-03-01T10:00:00+01:00",
           "Created_Time": "2026-03-01T09:00:00+01:00", "BookingId": "#AN-00014"}
    record = MeetingFields().parse(raw)
    assert record.start == dt.datetime(2026, 3, 8, 4, 30, tzinfo=UTC)
    for unlinked in (None, "", "   "):       # not linked: reported, so the planner can unlink
        assert MeetingFields().parse(dict(raw, BookingId=unlinked)).booking_id is None


@pytest.mark.parametrize("field,value,needle", [
    ("Start_DateTime", "2026-03-08 10:00", "Start_DateTime"),
    ("Start_DateTime", "2026-03-08T10:00:00", "without a UTC offset"),
    ("Modified_Time", None, "Modified_Time is missing"),
    ("id", "abc", "not a numeric string"),
    ("id", "１２３", "not a numeric string"),                 # full-width digits
    ("Start_DateTime", "0206-03-08T10:00:00+00:00", "outside the years"),
    ("Start_DateTime", "0001-01-01T00:00:00+05:30", "outside the years"),
    ("Start_DateTime", "9999-12-31T23:59:59-05:00", "outside the years"),
    ("Start_DateTime", "２０２７-03-08T10:00:00+00:00", "odd characters"),
    ("Start_DateTime", None, "Start_DateTime is missing"),
    ("BookingId", ["#AN-1"], "expected a Bookings id string"),
    ("BookingId", "#AN-1\x1b[2J", "control characters"),
])
def test_normalize_names_the_record_and_field_of_bad_input(field, value, needle):
    raw = {"id": "1", "Start_DateTime": "2026-03-08T10:00:00+05:30",
           "Modified_Time": "2026-03-01T10:00:00+01:00", "BookingId": "#AN-1", field: value}
    with pytest.raises(RecordError, match=needle):
        MeetingFields().parse(raw)


# -- never the wrong booking -----------------------------------------------------------------

def test_a_cloned_meeting_is_a_conflict_and_nothing_is_sent_for_its_booking():
    view = View()
    run(view, [rec("1001")], baseline=True)
    clone = rec("1002", created=NOW + dt.timedelta(minutes=1), booking="#AN-1",
                modified=NOW + dt.timedelta(minutes=1))          # CRM's Clone: same booking id
    first = run(view, [clone])
    assert first.actions == [] and first.conflicts == {"#AN-1": ["1001", "1002"]}
    moved = run(view, [rec("1001", start=T0 + dt.timedelta(hours=3),
                           modified=NOW + dt.timedelta(minutes=2))])
    deleted = run(view, [], deleted=[DeletedMeeting("1002", NOW + dt.timedelta(minutes=3))])
    assert moved.actions == [] and moved.conflicts == {"#AN-1": ["1001", "1002"]}
    # Deleting the clone sends no cancel; the survivor is compared with Bookings once.
    assert [(a.meeting_id, a.kind) for a in deleted.actions] == [("1001", Kind.RESCHEDULE)]
    assert deleted.conflicts == {} and view.pending()["1001"].start == T0 + dt.timedelta(hours=3)
    assert any(n.event == "booking.conflict_resolved" for n in deleted.notes)


def test_an_action_pending_when_a_clone_appears_is_dropped():
    view = View()
    run(view, [rec("1001")], baseline=True)
    run(view, [rec("1001", start=T0 + dt.timedelta(hours=1), modified=NOW + dt.timedelta(minutes=1))])
    assert "1001" in view.pending()
    result = run(view, [rec("1002", created=NOW, modified=NOW + dt.timedelta(minutes=2),
                            booking="#AN-1")])
    assert result.drop_pending == ["1001"] and view.pending() == {}


def test_a_cleared_booking_id_unlinks_so_a_later_delete_sends_nothing():
    view = View()
    run(view, [rec("1001")], baseline=True)
    cleared = run(view, [rec("1001", booking=None, modified=NOW + dt.timedelta(minutes=1))])
    assert cleared.unlinked == ["1001"] and cleared.actions == []
    assert view.meetings["1001"].booking_id is None    # kept, so a relink is compared
    later = run(view, [rec("1001", booking=None, start=T0 + dt.timedelta(hours=2),
                           modified=NOW + dt.timedelta(minutes=2))],
                deleted=[DeletedMeeting("1001", NOW + dt.timedelta(minutes=3))])
    assert later.actions == [] and later.meetings == []


def test_a_booking_id_put_back_after_unlinking_is_compared_with_bookings():
    # Its row outlived the unlink, so the meeting is not taken for a fresh integration copy
    # (which would be trusted as Bookings' own and sent nothing).
    view = View()
    run(view, [rec("1001")], baseline=True)
    run(view, [rec("1001", booking=None, modified=NOW + dt.timedelta(minutes=1))])
    relinked = run(view, [rec("1001", start=T0 + dt.timedelta(hours=2),
                              created=NOW + dt.timedelta(minutes=2),
                              modified=NOW + dt.timedelta(minutes=2))])   # looks just created
    assert [(a.meeting_id, a.kind) for a in relinked.actions] == [("1001", Kind.RESCHEDULE)]
    assert view.meetings["1001"].booking_id == "#AN-1"


def test_a_modified_time_past_the_servers_clock_never_moves_the_cursor():
    view = View()
    limit = NOW + dt.timedelta(minutes=1)
    run(view, [rec("1001"), rec("1003")], baseline=True)
    future = rec("1001", start=T0 + dt.timedelta(hours=1), modified=dt.datetime(2099, 1, 1, tzinfo=UTC))
    result = run(view, [future, rec("1003", start=T0 + dt.timedelta(hours=2),
                                    modified=NOW + dt.timedelta(seconds=30))],
                 believable_until=limit)
    assert result.cursor == NOW + dt.timedelta(seconds=30)
    assert any(n.event == "crm.future_timestamp" for n in result.notes)
    assert {a.meeting_id for a in result.actions} == {"1001", "1003"}
    # A later real edit of the 2099 meeting (an older stamp) is still a change.
    edited = run(view, [rec("1001", start=T0 + dt.timedelta(hours=5),
                            modified=NOW + dt.timedelta(seconds=40))], believable_until=limit)
    assert [a.start for a in edited.actions] == [T0 + dt.timedelta(hours=5)]


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(-48, 48)), min_size=1, max_size=30))
def test_any_edit_sequence_ends_with_one_pending_action_per_meeting_at_its_latest_start(edits):
    """Whatever the order of edits over cycles, each meeting has at most one pending action,
    targeting the latest CRM start, and replaying the same records plans nothing."""
    view = View()
    ids = [str(1000 + i) for i in range(4)]
    run(view, [rec(m) for m in ids], baseline=True)
    latest = {m: T0 for m in ids}
    for step, (who, hours) in enumerate(edits, start=1):
        start = T0 + dt.timedelta(hours=hours)
        record = rec(ids[who], start=start, modified=NOW + dt.timedelta(seconds=step))
        run(view, [record])
        latest[ids[who]] = start
        assert run(view, [record]).actions == []          # replay: nothing new
    pending = view.pending()
    for meeting_id, action in pending.items():
        assert action.start == latest[meeting_id]
    for meeting_id in ids:
        if latest[meeting_id] != T0:
            assert meeting_id in pending
