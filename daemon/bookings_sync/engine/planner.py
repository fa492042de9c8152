"""Decide, without I/O: (snapshot, fetched meeting records) → :class:`Plan`.

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
- Never the wrong booking: a booking id on two or more meetings (CRM's Clone copies custom
  fields; so can an import) is a *conflict* — nothing is sent for that booking, from either
  meeting, while it lasts, and a pending action for it is dropped. When only one meeting keeps
  the id again, that meeting is compared with Bookings (one read; a write only if they differ).
  A meeting whose booking-id field is cleared (or blank) is unlinked: its row stays without a
  booking id, so a later edit or deletion of it sends nothing, and an id put back later (or a
  restored meeting) is compared with Bookings rather than taken for a fresh integration copy.
- Trusted time: a Modified_Time (or deleted_time) past ``believable_until`` — the server's
  clock plus a small skew — never moves a cursor (one record stamped 2099 must not hide every
  later edit), and a snapshot row holding such a stamp is compared by content, not by stamp.
- Booking from CRM (``[book]``): a meeting seen after the baseline with the trigger ticked and no
  booking id → one ``book`` action — unless that meeting was booked already (never twice), or
  refused as it stands (again only once what the booking depends on changes). More new bookings
  than ``max_per_cycle`` → all held (a misconfigured trigger must not book a calendar). When
  Zoho's own meeting for our booking appears, or :data:`~.booking.INTEGRATION_WINDOW` passes
  without it, a ``link`` action leaves exactly one meeting carrying the booking; the request
  meeting and Zoho's are our pair, never a conflict.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Callable, Iterable, Protocol

from .booking import INTEGRATION_WINDOW
from .model import (Action, DeletedMeeting, Hold, Kind, MeetingRecord, Note, OnDelete, Request,
                    RequestState, SeenMeeting)


class SnapshotView(Protocol):
    """What the planner reads of the snapshot."""
    def meeting(self, meeting_id: str) -> SeenMeeting | None: ...
    def pending(self) -> dict[str, Action]: ...
    def has_failure(self, meeting_id: str) -> bool: ...
    def meetings_linked_to(self, booking_id: str) -> set[str]: ...   # not deleted
    def requests(self) -> dict[str, Request]: ...                      # by request meeting id


@dataclasses.dataclass(frozen=True)
class PlannerSettings:
    # CRM value of the status field -> the Bookings action it asks for.
    status_map: dict[str, Kind] = dataclasses.field(default_factory=dict)
    creation_grace_seconds: int = 10
    on_delete: OnDelete = OnDelete.CANCEL
    max_cancel_fraction: float = 0.2
    max_cancel_floor: int = 5
    max_bookings: int | None = None     # [book] max_per_cycle; None: booking from CRM is off

    def status_action(self, value: str | None) -> Kind | None:
        return None if value is None else self.status_map.get(value)


@dataclasses.dataclass
class Plan:
    cursor: dt.datetime | None
    deleted_cursor: dt.datetime | None
    baseline: bool = False
    meetings: list[SeenMeeting] = dataclasses.field(default_factory=list)   # rows to upsert
    actions: list[Action] = dataclasses.field(default_factory=list)         # pending to (re)place
    drop_pending: list[str] = dataclasses.field(default_factory=list)
    clear_failures: list[str] = dataclasses.field(default_factory=list)
    notes: list[Note] = dataclasses.field(default_factory=list)
    unlinked: list[str] = dataclasses.field(default_factory=list)    # unlinked this cycle
    conflicts: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # booking → ids
    requests: list[Request] = dataclasses.field(default_factory=list)   # request rows to upsert
    held: int = 0                      # actions held by a guard (mass cancel, mass book)


def plan(view: SnapshotView, records: Iterable[MeetingRecord], *, settings: PlannerSettings,
         baseline: bool, now: dt.datetime, cursor: dt.datetime | None,
         deleted: Iterable[DeletedMeeting] = (), deleted_cursor: dt.datetime | None = None,
         upcoming_count: Callable[[], int] = lambda: 0,
         allow_mass_cancel: bool = False, allow_mass_book: bool = False,
         believable_until: dt.datetime | None = None) -> Plan:
    latest = _latest_versions(records)
    planning = _Planning(view, settings, baseline, now, believable_until,
                         Plan(cursor=cursor, deleted_cursor=deleted_cursor, baseline=baseline))
    for record in latest.values():
        planning.meeting(record)
    for item in deleted:
        planning.deletion(item)
    planning.settle_conflicts()
    planning.link_late_bookings()
    planning.guard_mass_cancel(upcoming_count, allow_mass_cancel)
    planning.guard_mass_book(allow_mass_book)
    return planning.finish()


def _latest_versions(records: Iterable[MeetingRecord]) -> dict[str, MeetingRecord]:
    """One record per meeting, the newest (paging and the overlap window repeat records)."""
    latest: dict[str, MeetingRecord] = {}
    for record in records:
        seen = latest.get(record.id)
        if seen is None or record.modified >= seen.modified:
            latest[record.id] = record
    return latest


class _Planning:
    """The state of one :func:`plan` call, one method per kind of input."""

    def __init__(self, view: SnapshotView, settings: PlannerSettings, baseline: bool,
                 now: dt.datetime, believable_until: dt.datetime | None, result: Plan):
        self.view, self.settings, self.baseline, self.now = view, settings, baseline, now
        self.believable_until = believable_until
        self.result = result
        self.pending = view.pending()
        self.actions: dict[str, Action] = {}
        self.touched: set[str] = set()            # bookings whose links this plan may change
        self.requests = view.requests() if settings.max_bookings is not None else {}
        self.request_of = {r.booking_id: r for r in self.requests.values() if r.booking_id}

    def believable(self, stamp: dt.datetime, meeting_id: str, field: str) -> bool:
        if self.believable_until is None or stamp <= self.believable_until:
            return True
        self.result.notes.append(Note("warning", "crm.future_timestamp", {
            "meeting_id": meeting_id, "field": field, "value": stamp.isoformat(),
            "server_time_limit": self.believable_until.isoformat(),
            "reason": "later than the server's own clock: not used to move the cursor"}))
        return False

    def act(self, row: SeenMeeting, kind: Kind, old_start: dt.datetime | None) -> None:
        self.actions[row.id] = Action(
            meeting_id=row.id, booking_id=row.booking_id, kind=kind, start=row.start,
            end=row.end, old_start=old_start, modified=row.modified, planned_at=self.now)

    def meeting(self, record: MeetingRecord) -> None:
        result, settings = self.result, self.settings
        if self.believable(record.modified, record.id, "Modified_Time") and (
                result.cursor is None or record.modified > result.cursor):
            result.cursor = record.modified
        snap = self.view.meeting(record.id)
        known = snap is not None       # seen before: never "fresh from the integration"
        if record.booking_id is None:
            if snap is not None and snap.booking_id is not None:
                self.unlink(snap)
            if record.book is not None and not self.baseline:
                self.book(record)
            return
        row = SeenMeeting.from_record(record, snap)
        if snap is not None and _already_seen(snap, row, self.believable_until):
            return   # the overlap window showed us a version we already handled
        self.touched.add(row.booking_id)
        self.pair(record)
        if snap is not None and snap.booking_id != record.booking_id:
            if snap.booking_id is not None:
                self.touched.add(snap.booking_id)
            snap = None   # (re)linked to a booking: a new meeting as far as Bookings cares
        elif snap is not None and snap.deleted:
            row = dataclasses.replace(row, deleted=True)  # restored from the recycle bin
        result.meetings.append(row)
        if self.baseline:
            return
        wanted = settings.status_action(record.status)
        if record.status is not None and wanted is None and settings.status_map:
            result.notes.append(Note("debug", "status.unmapped", {
                "meeting_id": record.id, "value": record.status}))
        if snap is None:
            if wanted is not None:
                self.act(row, wanted, None)
            elif known or not _fresh(record, settings):
                self.act(row, Kind.RESCHEDULE, None)   # edited before we first saw it: compare
            return
        was = settings.status_action(snap.status)
        if wanted is not None:
            if wanted != was:
                self.act(row, wanted, snap.start)
            return
        pending = self.pending.get(record.id)
        if was is not None and pending is not None and pending.kind == was:
            # Cancelled (or closed) and reopened before the action ran: nothing to close.
            result.drop_pending.append(record.id)
        if row.start != snap.start:
            self.act(row, Kind.RESCHEDULE, snap.start)

    def book(self, record: MeetingRecord) -> None:
        """A ticked meeting: book it, unless it was booked already or refused as it stands."""
        if self.settings.max_bookings is None:
            return
        fingerprint = record.book.fingerprint(record.start)
        request = self.requests.get(record.id)
        if request is not None:
            if request.state in (RequestState.BOOKED, RequestState.LINKED):
                return      # booked once: never again from this meeting
            if request.fingerprint == fingerprint:
                return      # being booked, or refused, as it stands
            pending = self.pending.get(record.id)
            if pending is not None and pending.in_flight is not None:
                return      # perhaps booked already: the pending action finds out first
        self.actions[record.id] = Action(
            meeting_id=record.id, booking_id="", kind=Kind.BOOK, start=record.start,
            end=record.end, old_start=None, modified=record.modified, planned_at=self.now,
            request=record.book)
        self.result.requests.append(Request(record.id, RequestState.BOOKING, fingerprint,
                                            at=self.now))

    def pair(self, record: MeetingRecord) -> None:
        """Zoho's meeting for a booking we made has appeared: link the pair."""
        request = self.request_of.get(record.booking_id)
        if (request is None or record.id in (request.meeting_id, request.partner)
                or request.state not in (RequestState.BOOKED, RequestState.LINKED)):
            return
        self.actions[request.meeting_id] = Action(
            meeting_id=request.meeting_id, booking_id=record.booking_id, kind=Kind.LINK,
            start=record.start, end=record.end, old_start=None, modified=record.modified,
            planned_at=self.now, partner=record.id)

    def link_late_bookings(self) -> None:
        """Bookings whose Zoho meeting has not appeared in time: the request meeting carries
        the booking itself."""
        for request in self.requests.values():
            if (request.state is RequestState.BOOKED and request.partner is None
                    and self.now - request.at >= INTEGRATION_WINDOW
                    and request.meeting_id not in self.actions
                    and request.meeting_id not in self.pending):
                self.actions[request.meeting_id] = Action(
                    meeting_id=request.meeting_id, booking_id=request.booking_id,
                    kind=Kind.LINK, start=request.start, end=request.end, old_start=None,
                    modified=None, planned_at=self.now)

    def unlink(self, snap: SeenMeeting) -> None:
        """The meeting's booking-id field was cleared: it no longer stands for the booking, and
        what was pending for it goes. Its row stays, unlinked, so that a booking id put back
        later is compared with Bookings, not taken for a meeting fresh from the integration."""
        self.result.unlinked.append(snap.id)
        self.result.meetings.append(dataclasses.replace(snap, booking_id=None))
        self.touched.add(snap.booking_id)
        self.actions.pop(snap.id, None)
        if snap.id in self.pending:
            self.result.drop_pending.append(snap.id)
        if self.view.has_failure(snap.id):
            self.result.clear_failures.append(snap.id)
        self.result.notes.append(Note("info", "meeting.unlinked", {
            "meeting_id": snap.id, "booking_id": snap.booking_id,
            "reason": "its booking-id field is empty now; edits of it no longer reach Bookings"}))

    def deletion(self, item: DeletedMeeting) -> None:
        result = self.result
        if item.deleted_at is not None and self.believable(
                item.deleted_at, item.id, "deleted_time") and (
                result.deleted_cursor is None or item.deleted_at > result.deleted_cursor):
            result.deleted_cursor = item.deleted_at
        snap = self.view.meeting(item.id)
        if snap is None or snap.deleted or snap.booking_id is None:
            return    # not booking-linked, not tracked, unlinked, or already handled
        self.touched.add(snap.booking_id)
        row = dataclasses.replace(snap, deleted=True)
        result.meetings.append(row)
        self.actions.pop(item.id, None)
        if self.baseline or self.settings.on_delete is not OnDelete.CANCEL:
            return
        if self.settings.status_action(snap.status) is Kind.CANCEL:
            return    # cancelled before it was deleted: that cancel is already planned or done
        self.act(row, Kind.CANCEL, snap.start)

    def settle_conflicts(self) -> None:
        """Nothing is sent for a booking that more than one meeting carried, before this plan,
        after it, or across it (a clone made and the original deleted in one interval); when
        this plan leaves one meeting with it, that meeting is compared again."""
        after = self._links_after()
        for booking in sorted(self.touched):
            ours = self.request_of.get(booking)      # our request meeting and Zoho's: a pair
            mine = {ours.meeting_id} if ours else set()
            before = self.view.meetings_linked_to(booking) - mine
            links = after(booking) - mine
            if len(before | links) <= 1:
                continue
            for meeting_id, action in list(self.actions.items()):
                if action.booking_id == booking and action.kind is not Kind.LINK:
                    del self.actions[meeting_id]
            self.result.drop_pending.extend(
                m for m, a in self.pending.items() if a.booking_id == booking)
            if len(links) > 1:
                self.result.conflicts[booking] = sorted(links)
            elif links and not self.baseline:
                self.compare_survivor(links.pop())

    def _links_after(self) -> Callable[[str], set[str]]:
        """booking id → the meetings linked to it once this plan is applied."""
        now_linked: dict[str, str | None] = {}
        for row in self.result.meetings:
            now_linked[row.id] = None if row.deleted else row.booking_id
        added: dict[str, set[str]] = {}
        for meeting_id, booking in now_linked.items():
            if booking is not None:
                added.setdefault(booking, set()).add(meeting_id)

        def links(booking: str) -> set[str]:
            kept = {m for m in self.view.meetings_linked_to(booking) if m not in now_linked}
            return kept | added.get(booking, set())
        return links

    def compare_survivor(self, meeting_id: str) -> None:
        row = next((r for r in self.result.meetings if r.id == meeting_id), None) \
            or self.view.meeting(meeting_id)
        self.act(row, self.settings.status_action(row.status) or Kind.RESCHEDULE, None)
        self.result.notes.append(Note("info", "booking.conflict_resolved", {
            "booking_id": row.booking_id, "meeting_id": meeting_id,
            "reason": "only this meeting carries the booking id now: compared with Bookings"}))

    def guard_mass_cancel(self, upcoming_count: Callable[[], int], allow: bool) -> None:
        settings = self.settings
        cancels = [a for a in self.actions.values() if a.kind is Kind.CANCEL]
        if allow or len(cancels) <= settings.max_cancel_floor:
            return
        upcoming = upcoming_count()
        limit = max(settings.max_cancel_floor, int(settings.max_cancel_fraction * upcoming))
        if len(cancels) <= limit:
            return
        for action in cancels:
            self.actions[action.meeting_id] = dataclasses.replace(action, held=Hold.MASS_CANCEL)
        self.result.held = len(cancels)
        self.result.notes.append(Note("error", "guard.mass_cancel", {
            "cancels": len(cancels), "upcoming": upcoming, "limit": limit,
            "reason": (f"this cycle would cancel {len(cancels)} of {upcoming} tracked upcoming "
                       f"appointments (limit {limit}); none sent. If that is intended run "
                       f"`bookings-sync --run-once --allow-mass-cancel` or `bookings-sync retry`"),
        }))

    def guard_mass_book(self, allow: bool) -> None:
        bookings = [a for a in self.actions.values() if a.kind is Kind.BOOK]
        limit = self.settings.max_bookings
        if allow or limit is None or len(bookings) <= limit:
            return
        for action in bookings:
            self.actions[action.meeting_id] = dataclasses.replace(action, held=Hold.MASS_BOOK)
        self.result.held += len(bookings)
        self.result.notes.append(Note("error", "guard.mass_book", {
            "bookings": len(bookings), "limit": limit,
            "reason": (f"this cycle would book {len(bookings)} meetings ([book] max_per_cycle "
                       f"is {limit}); none sent. If that is intended run "
                       f"`bookings-sync --run-once --allow-mass-book` or `bookings-sync retry`"),
        }))

    def finish(self) -> Plan:
        result = self.result
        for meeting_id, action in self.actions.items():
            result.actions.append(action)
            if self.view.has_failure(meeting_id):
                result.clear_failures.append(meeting_id)
        result.drop_pending = sorted(set(result.drop_pending) - self.actions.keys())
        return result


def _already_seen(snap: SeenMeeting, row: SeenMeeting,
                  believable_until: dt.datetime | None) -> bool:
    """Older than the snapshot, or the same version. Modified_Time has one-second resolution,
    so two edits within one second share it: equal stamps count as seen only when what we act
    on is equal too. A snapshot stamp past the server's clock proves nothing: compare content."""
    same = (row.start, row.status, row.booking_id) == (snap.start, snap.status, snap.booking_id)
    if believable_until is not None and snap.modified > believable_until:
        return same
    if row.modified != snap.modified:
        return row.modified < snap.modified
    return same


def _fresh(record: MeetingRecord, settings: PlannerSettings) -> bool:
    if record.created is None:
        return False
    return (record.modified - record.created).total_seconds() <= settings.creation_grace_seconds
