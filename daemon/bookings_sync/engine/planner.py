"""Decide, without I/O: (snapshot, fetched CRM records) → :class:`Plan`.

Like vdirsyncer's ``_get_actions``, this module only looks. It reads the snapshot through a small
read-only view, compares each fetched meeting with what was last seen, and returns the snapshot
rows to write, the actions to record as pending, and the new cursor. The executor acts on the
plan; the cycle commits both in one atomic write. Rules (README "How it decides"):

- Baseline: with an empty store every booking-linked meeting is recorded, none acted on.
- A stale or repeated record (older Modified_Time, or the same one with the same content) changes
  nothing — this is what makes the cursor's overlap window free. Two edits within one second
  share a Modified_Time, so an equal stamp with a different start is still a change.
- A meeting whose start instant moved → ``reschedule`` to the new instant. Instants, not strings:
  two CRM users see one meeting with different offsets.
- A status value mapped to a Bookings action (cancelled, completed, no-show) or a deletion →
  that action; it wins over a move seen in the same interval (move-then-cancel = cancel only).
- An action planned for a meeting replaces the one pending for it: two edits before the action
  runs → one action, to the latest state.
- A meeting seen for the first time that is untouched since creation came from the Bookings
  integration: recorded without spending a Bookings call. One edited since creation gets a
  ``reschedule`` whose executor first compares with Bookings (so costs one read when in sync).
- Mass-cancel guard: more cancels than ``max(floor, fraction × upcoming)`` → the cancels are
  recorded but held, the cycle reports why, and ``--allow-mass-cancel`` or ``retry`` release them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Callable, Iterable, Protocol

from bookings_sync.zoho.timefmt import TimeFormatError, parse_crm_datetime, utc_iso

RESCHEDULE = "reschedule"
CANCEL = "cancel"
STATUS_ACTIONS = ("cancel", "completed", "noshow")
HELD_MASS_CANCEL = "mass-cancel"


class SnapshotView(Protocol):
    def meeting(self, meeting_id: str) -> dict | None: ...
    def pending(self) -> dict[str, dict]: ...
    def failure(self, meeting_id: str) -> dict | None: ...


@dataclasses.dataclass(frozen=True)
class PlannerSettings:
    booking_id_field: str = "BookingId"
    status_field: str = ""
    status_map: dict[str, str] = dataclasses.field(default_factory=dict)
    creation_grace_seconds: int = 10
    on_delete: str = "cancel"
    max_cancel_fraction: float = 0.2
    max_cancel_floor: int = 5

    def fields(self) -> list[str]:
        """The CRM fields the planner needs (``fields`` is mandatory on CRM v3+)."""
        names = ["id", "Start_DateTime", "End_DateTime", "Created_Time", "Modified_Time",
                 self.booking_id_field]
        if self.status_field:
            names.append(self.status_field)
        return list(dict.fromkeys(names))

    def status_action(self, value: str | None) -> str | None:
        if value is None:
            return None
        return self.status_map.get(value)


@dataclasses.dataclass(frozen=True)
class MeetingRecord:
    """One CRM meeting, normalized: instants are aware UTC, ids strings."""
    id: str
    booking_id: str
    start: dt.datetime
    end: dt.datetime | None
    created: dt.datetime | None
    modified: dt.datetime
    status: str | None = None


class RecordError(ValueError):
    """A CRM record we cannot use; the message names the record and the field."""


def normalize(raw: dict, settings: PlannerSettings) -> MeetingRecord | None:
    """Raw CRM record → :class:`MeetingRecord`; ``None`` for a meeting not linked to a booking."""
    meeting_id = raw.get("id")
    if not isinstance(meeting_id, (str, int)) or not str(meeting_id).isdigit():
        raise RecordError(f"CRM meeting with id {meeting_id!r}: id is not a numeric string")
    meeting_id = str(meeting_id)
    booking_id = raw.get(settings.booking_id_field)
    if booking_id in (None, ""):
        return None
    if not isinstance(booking_id, (str, int)):
        raise RecordError(f"CRM meeting {meeting_id}: field {settings.booking_id_field} holds "
                          f"{booking_id!r}, expected a Bookings id string")

    def when(field: str, required: bool) -> dt.datetime | None:
        value = raw.get(field)
        if value in (None, ""):
            if required:
                raise RecordError(f"CRM meeting {meeting_id}: field {field} is missing")
            return None
        try:
            return parse_crm_datetime(value)
        except TimeFormatError as exc:
            raise RecordError(f"CRM meeting {meeting_id}: field {field}: {exc}") from None

    status = raw.get(settings.status_field) if settings.status_field else None
    if status is not None and not isinstance(status, str):
        status = str(status)
    return MeetingRecord(
        id=meeting_id, booking_id=str(booking_id).strip(),
        start=when("Start_DateTime", True), end=when("End_DateTime", False),
        created=when("Created_Time", False), modified=when("Modified_Time", True), status=status)


@dataclasses.dataclass
class Note:
    """Something the cycle must log (the planner does no I/O itself)."""
    level: str
    event: str
    fields: dict


@dataclasses.dataclass
class Plan:
    cursor: str | None
    deleted_cursor: str | None
    baseline: bool = False
    meetings: list[dict] = dataclasses.field(default_factory=list)   # snapshot rows to upsert
    actions: list[dict] = dataclasses.field(default_factory=list)    # pending rows to (re)place
    drop_pending: list[str] = dataclasses.field(default_factory=list)
    clear_failures: list[str] = dataclasses.field(default_factory=list)
    notes: list[Note] = dataclasses.field(default_factory=list)
    held: int = 0                      # cancels held by the mass-cancel guard
    seen: int = 0                      # records examined (after de-duplication)

    @property
    def changed(self) -> bool:
        return bool(self.meetings or self.actions or self.drop_pending or self.clear_failures)


def plan(view: SnapshotView, records: Iterable[MeetingRecord], *, settings: PlannerSettings,
         baseline: bool, now: dt.datetime, cursor: str | None,
         deleted: Iterable[dict] = (), deleted_cursor: str | None = None,
         upcoming_count: Callable[[], int] = lambda: 0,
         allow_mass_cancel: bool = False) -> Plan:
    latest: dict[str, MeetingRecord] = {}
    for record in records:
        seen = latest.get(record.id)
        if seen is None or record.modified >= seen.modified:
            latest[record.id] = record

    result = Plan(cursor=cursor, deleted_cursor=deleted_cursor, baseline=baseline,
                  seen=len(latest))
    planned_at = utc_iso(now)
    pending = view.pending()
    new_actions: dict[str, dict] = {}

    def act(snap_row: dict, kind: str, old_start: str | None) -> None:
        new_actions[snap_row["id"]] = {
            "meeting_id": snap_row["id"], "booking_id": snap_row["booking_id"], "kind": kind,
            "start": snap_row["start"], "end": snap_row.get("end"), "old_start": old_start,
            "modified": snap_row["modified"], "planned_at": planned_at, "attempts": 0,
            "not_before": None, "last_error": None,
        }

    for record in latest.values():
        modified = utc_iso(record.modified)
        if result.cursor is None or modified > result.cursor:
            result.cursor = modified
        snap = view.meeting(record.id)
        row = {
            "id": record.id, "booking_id": record.booking_id, "start": utc_iso(record.start),
            "end": utc_iso(record.end) if record.end else None, "modified": modified,
            "status": record.status,
            "last_action": (snap or {}).get("last_action"),
            "outcome": (snap or {}).get("outcome"),
            "outcome_at": (snap or {}).get("outcome_at"),
        }
        if snap is not None and _already_seen(snap, row):
            continue   # the overlap window showed us a version we already handled
        result.meetings.append(row)
        if baseline:
            continue
        if snap is not None and snap.get("booking_id") != record.booking_id:
            # Relinked to another booking: a new meeting as far as Bookings is concerned.
            snap = None
        wanted = settings.status_action(record.status)
        if record.status is not None and wanted is None and settings.status_map:
            result.notes.append(Note("debug", "status.unmapped", {
                "meeting_id": record.id, "value": record.status}))
        if snap is None:
            if wanted is not None:
                act(row, wanted, None)
            elif _fresh(record, settings):
                continue
            else:
                act(row, RESCHEDULE, None)   # edited before we first saw it: compare with Bookings
            continue
        was = settings.status_action(snap.get("status"))
        if snap.get("deleted"):
            row["deleted"] = True       # a deleted meeting restored from the recycle bin
        if wanted is not None:
            if wanted != was:
                act(row, wanted, snap.get("start"))
            continue
        if was is not None and record.id in pending and pending[record.id]["kind"] == was:
            # Cancelled (or closed) and reopened before the action ran: nothing to close.
            result.drop_pending.append(record.id)
        if row["start"] != snap.get("start"):
            act(row, RESCHEDULE, snap.get("start"))

    for item in deleted:
        meeting_id = str(item.get("id", ""))
        deleted_time = item.get("deleted_time")
        if deleted_time:
            try:
                stamp = utc_iso(parse_crm_datetime(deleted_time))
            except TimeFormatError as exc:
                result.notes.append(Note("warning", "crm.bad_record", {
                    "meeting_id": meeting_id, "reason": f"deleted_time: {exc}"}))
                stamp = None
            if stamp and (result.deleted_cursor is None or stamp > result.deleted_cursor):
                result.deleted_cursor = stamp
        if not meeting_id.isdigit():
            continue
        snap = view.meeting(meeting_id)
        if snap is None or snap.get("deleted"):
            continue    # not booking-linked, not tracked, or already handled
        row = dict(snap, deleted=True)
        result.meetings.append(row)
        new_actions.pop(meeting_id, None)
        if baseline or settings.on_delete != "cancel":
            continue
        if settings.status_action(snap.get("status")) == CANCEL:
            continue    # cancelled before it was deleted: that cancel is already planned or done
        act(row, CANCEL, snap.get("start"))

    _guard_mass_cancel(result, new_actions, pending, settings, upcoming_count, allow_mass_cancel)

    for meeting_id, action in new_actions.items():
        result.actions.append(action)
        if view.failure(meeting_id) is not None:
            result.clear_failures.append(meeting_id)
    result.drop_pending = [m for m in result.drop_pending if m not in new_actions]
    return result


def _already_seen(snap: dict, row: dict) -> bool:
    """Older than the snapshot, or the same version. Modified_Time has one-second resolution,
    so two edits within one second share it: equal stamps count as seen only when what we act
    on is equal too."""
    if row["modified"] != snap.get("modified", ""):
        return row["modified"] < snap.get("modified", "")
    return all(row[k] == snap.get(k) for k in ("start", "status", "booking_id"))


def _fresh(record: MeetingRecord, settings: PlannerSettings) -> bool:
    if record.created is None:
        return False
    return (record.modified - record.created).total_seconds() <= settings.creation_grace_seconds


def _guard_mass_cancel(result: Plan, new_actions: dict[str, dict], pending: dict[str, dict],
                       settings: PlannerSettings, upcoming_count: Callable[[], int],
                       allow: bool) -> None:
    cancels = [a for a in new_actions.values() if a["kind"] == CANCEL]
    if allow or len(cancels) <= settings.max_cancel_floor:
        return
    upcoming = upcoming_count()
    limit = max(settings.max_cancel_floor, int(settings.max_cancel_fraction * upcoming))
    if len(cancels) <= limit:
        return
    for action in cancels:
        action["held"] = HELD_MASS_CANCEL
    result.held = len(cancels)
    result.notes.append(Note("error", "guard.mass_cancel", {
        "cancels": len(cancels), "upcoming": upcoming, "limit": limit,
        "reason": (f"this cycle would cancel {len(cancels)} of {upcoming} tracked upcoming "
                   f"appointments (limit {limit}); none sent. If that is intended run "
                   f"`bookings-sync --run-once --allow-mass-cancel` or `bookings-sync retry`"),
    }))
