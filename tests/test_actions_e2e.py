"""Beyond reschedule: cancel, completed, no-show and refused changes follow the CRM side.

The console script against the sandbox over HTTP; each test counts the Bookings calls.
"""

from __future__ import annotations

import datetime as dt

import pytest

from e2e import future, run_once, write_config

STATUS = """status_field = "Meeting_Status"
[crm.status_map]
"Cancelled" = "cancel"
"Completed" = "completed"
"No Show" = "noshow"
"""


@pytest.fixture
def sb(make_sandbox):
    return make_sandbox(crm_time_zone="Europe/Berlin")


def make_config(sb, tmp_path, **sync):
    extra = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in sync.items())
    return write_config(sb, tmp_path / "state", tmp_path / "sync.toml", crm=STATUS, sync=extra)


def updates(sb, action: str | None = None) -> list[dict]:
    return [e for e in sb.request_log if e["endpoint"] == "bookings.updateappointment"
            and (action is None or e["form"].get("action") == action)]


@pytest.mark.parametrize("how", ["cancel action", "status field", "delete"])
def test_a_meeting_cancelled_in_crm_cancels_its_booking_once(sb, tmp_path, how):
    meeting_id, booking_id = sb.book(start=future(3), time_zone="Asia/Kolkata")
    sb.book(start=future(4), time_zone="UTC")     # an untouched neighbour
    config = make_config(sb, tmp_path)
    assert run_once(config).code == 0
    if how == "cancel action":
        sb.crm_cancel(meeting_id)
    elif how == "status field":
        sb.crm_edit(meeting_id, Meeting_Status="Cancelled")
    else:
        sb.crm_delete(meeting_id)
    result = run_once(config)
    assert result.code == 0, result.stderr[-2000:]
    for _ in range(2):                     # the integration's write-back, then idle
        assert run_once(config).code == 0
    [sent] = updates(sb)
    assert sent["form"] == {"booking_id": booking_id, "action": "cancel"}
    assert sb.appointment(booking_id)["status"] == "cancel"


def test_deletion_is_ignored_when_configured(sb, tmp_path):
    meeting_id, booking_id = sb.book(start=future(3), time_zone="UTC")
    config = make_config(sb, tmp_path, on_delete="ignore")
    assert run_once(config).code == 0
    sb.crm_delete(meeting_id)
    sb.reset_counters()
    assert run_once(config).code == 0
    assert updates(sb) == [] and sb.appointment(booking_id)["status"] == "upcoming"
    assert sb.calls["crm.deleted"] == 0      # not even asked: ignore costs nothing


@pytest.mark.parametrize("crm_value,action", [("Completed", "completed"), ("No Show", "noshow")])
def test_completed_and_no_show_follow_the_status_field_once(sb, tmp_path, crm_value, action):
    meeting_id, booking_id = sb.book(start=future(2), time_zone="America/New_York")
    config = make_config(sb, tmp_path)
    assert run_once(config).code == 0
    sb.crm_edit(meeting_id, Meeting_Status=crm_value)
    assert run_once(config).code == 0
    sb.crm_edit(meeting_id, Description="notes after the meeting")   # same status seen again
    for _ in range(2):
        assert run_once(config).code == 0
    assert [e["form"]["action"] for e in updates(sb)] == [action]
    assert sb.appointment(booking_id)["status"] == action


def test_a_status_changed_in_bookings_is_not_sent_back(sb, tmp_path):
    meeting_id, booking_id = sb.book(start=future(2), time_zone="UTC")
    config = make_config(sb, tmp_path)
    assert run_once(config).code == 0
    sb.bookings_cancel(booking_id)        # the integration sets Meeting_Status = Cancelled
    for _ in range(2):
        assert run_once(config).code == 0
    assert updates(sb) == []


def test_a_refused_reschedule_with_revert_puts_crm_back_once(sb, tmp_path):
    sb.book(start=future(5, 14), time_zone="UTC", staff_id="ana")
    meeting_id, booking_id = sb.book(start=future(5, 9), time_zone="UTC", staff_id="ana")
    config = make_config(sb, tmp_path, on_refused="revert")
    assert run_once(config).code == 0
    sb.crm_move(meeting_id, future(5, 14))            # onto Ana's other appointment
    result = run_once(config)
    assert result.code == 1
    [line] = result.event("action")
    assert line["outcome"] == "refused" and "Slot not available" in line["reason"]
    assert line["reverted_to"] == future(5, 9).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert sb.calls["crm.update"] == 1
    assert sb.meeting(meeting_id)["Start_DateTime"] == future(5, 9)
    sb.reset_counters()
    for _ in range(2):                     # the PUT's own Modified_Time bump comes back
        assert run_once(config).code == 0
    assert not any(k.startswith("bookings.") for k in sb.calls)
    assert sb.calls["crm.update"] == 0


def test_mass_deletion_is_held_until_allowed(sb, tmp_path):
    pairs = [sb.book(start=future(3, 8) + dt.timedelta(hours=i), time_zone="UTC")
             for i in range(10)]
    config = make_config(sb, tmp_path)
    assert run_once(config).code == 0
    for meeting_id, _ in pairs[:8]:
        sb.crm_delete(meeting_id)
    held = run_once(config)
    assert held.code == 1
    [guard] = held.event("guard.mass_cancel")
    assert "would cancel 8 of 10" in guard["reason"] and "--allow-mass-cancel" in guard["reason"]
    assert updates(sb) == []
    assert run_once(config).code == 1          # still held, still said
    assert updates(sb) == []
    allowed = run_once(config, "--allow-mass-cancel")
    assert allowed.code == 0, allowed.stderr[-2000:]
    sent = sorted(e["form"]["booking_id"] for e in updates(sb, "cancel"))
    assert sent == sorted(b for _, b in pairs[:8])
    assert run_once(config).code == 0
    assert len(updates(sb)) == 8


def test_move_then_cancel_in_one_interval_is_only_the_cancel(sb, tmp_path):
    meeting_id, booking_id = sb.book(start=future(3), time_zone="UTC")
    config = make_config(sb, tmp_path)
    assert run_once(config).code == 0
    sb.crm_move(meeting_id, future(4))
    sb.crm_cancel(meeting_id)
    assert run_once(config).code == 0
    assert sb.calls["bookings.rescheduleappointment"] == 0
    assert [e["form"]["action"] for e in updates(sb)] == ["cancel"]


def test_cancel_then_reopen_before_the_cycle_is_nothing(sb, tmp_path):
    meeting_id, booking_id = sb.book(start=future(3), time_zone="UTC")
    config = make_config(sb, tmp_path)
    assert run_once(config).code == 0
    sb.crm_cancel(meeting_id)
    sb.crm_edit(meeting_id, Meeting_Status="Scheduled")
    sb.reset_counters()
    assert run_once(config).code == 0
    assert updates(sb) == [] and sb.calls["bookings.rescheduleappointment"] == 0


def test_idle_cycle_with_every_feature_on_costs_two_crm_calls_and_no_bookings_call(sb, tmp_path):
    sb.seed(30)
    config = make_config(sb, tmp_path, on_refused="revert")
    assert run_once(config).code == 0
    assert run_once(config).code == 0
    sb.reset_counters()
    assert run_once(config).code == 0
    crm = sum(v for k, v in sb.calls.items() if k.startswith("crm."))
    assert crm <= 2 and sb.calls["crm.list"] == 1
    assert not any(k.startswith("bookings.") for k in sb.calls)
