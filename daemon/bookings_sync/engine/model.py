"""The engine's vocabulary: what the daemon can do to a booking, what can come of it, what it saw.

Every other module names actions, results and Bookings' statuses through this module, so a typo
fails at import (an unknown enum member) or in a test — never silently at 3 a.m. The types are
frozen: a change to an action is a new action (``dataclasses.replace``), so nothing edits a row
the store still holds.

Instants are aware UTC datetimes. Rows for the store are made and read only by ``to_row`` /
``from_row``; the text form of an instant in a row is the store's (``store.stamp``), and a row
leaves out every empty field (that keeps a 100,000-meeting state file small).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from bookings_sync.store import parse_stamp, stamp


class Kind(enum.StrEnum):
    """What an action asks of Bookings (and, for ``link``, of CRM)."""
    RESCHEDULE = "reschedule"   # rescheduleappointment to the meeting's new start
    CANCEL = "cancel"           # updateappointment action=cancel
    COMPLETED = "completed"     # updateappointment action=completed
    NOSHOW = "noshow"           # updateappointment action=noshow
    BOOK = "book"               # appointment: a meeting ticked in CRM becomes a booking
    LINK = "link"               # after a booking: leave exactly one CRM meeting carrying it

    @property
    def closes(self) -> bool:
        """A status action: the appointment cannot change any more once Bookings took it."""
        return self in STATUS_KINDS

    @property
    def closed_state(self) -> str | None:
        """What Bookings shows after this action (``None`` for a reschedule)."""
        return _CLOSED_BY.get(self)


# Bookings' updateappointment actions: the values a CRM status map may name.
STATUS_KINDS = (Kind.CANCEL, Kind.COMPLETED, Kind.NOSHOW)

# getappointment's ``status`` once an appointment is closed, as Zoho spells it (lower-cased;
# Zoho's filters say CANCEL / COMPLETED / NO_SHOW, records and public clients show the variants).
_CLOSED_STATUS = {"cancel": "cancelled", "cancelled": "cancelled", "completed": "completed",
                  "noshow": "no-show", "no_show": "no-show"}
_CLOSED_BY = {Kind.CANCEL: "cancelled", Kind.COMPLETED: "completed", Kind.NOSHOW: "no-show"}


def closed_state(bookings_status: str) -> str | None:
    """"cancelled" / "completed" / "no-show" for a closed appointment's status, else ``None``."""
    return _CLOSED_STATUS.get(bookings_status.strip().lower())


class Result(enum.StrEnum):
    """What came of one action (README "How it decides")."""
    DONE = "done"           # the write call succeeded
    IN_SYNC = "in_sync"     # Bookings already held the wanted state: no write
    SKIPPED = "skipped"     # the appointment is closed: nothing to move or close
    REFUSED = "refused"     # Bookings said no: kept with its reason until the meeting changes
    RETRY = "retry"         # transient: tried again on a later cycle, with backoff
    FAILED = "failed"       # a payload we cannot use: kept with the reason

    @property
    def is_failure(self) -> bool:
        """Recorded as a failure (shown in ``status``, re-queued only by ``retry``)."""
        return self in (Result.REFUSED, Result.FAILED)


class OnDelete(enum.StrEnum):
    """``[sync] on_delete``: what a CRM deletion of a booking-linked meeting does."""
    CANCEL = "cancel"           # cancel the appointment
    IGNORE = "ignore"           # nothing (teams that delete meetings to tidy calendars)


class OnRefused(enum.StrEnum):
    """``[sync] on_refused``: what a reschedule Bookings refuses does to the CRM meeting."""
    KEEP = "keep"               # leave CRM as the user set it; the failure shows in `status`
    REVERT = "revert"           # put the meeting back to the time Bookings holds


class Hold(enum.StrEnum):
    """Why a recorded action waits for an operator instead of running."""
    MASS_CANCEL = "mass-cancel"
    MASS_BOOK = "mass-book"


class OnBooked(enum.StrEnum):
    """``[book] on_booked``: the request meeting, once Zoho's own meeting for the booking is
    there."""
    DELETE = "delete"           # delete it (its description goes to Zoho's meeting)
    KEEP = "keep"               # keep it, unlinked


class RequestState(enum.StrEnum):
    """Where a booking request (a ticked CRM meeting) stands."""
    BOOKING = "booking"         # a book action is recorded (maybe sent)
    BOOKED = "booked"           # Bookings holds it; waiting for one CRM meeting to carry it
    LINKED = "linked"           # exactly one CRM meeting carries it
    REFUSED = "refused"         # not booked, with the reason; again only if the meeting changes


def _compact(row: dict) -> dict:
    return {k: v for k, v in row.items() if v is not None and v is not False}


@dataclasses.dataclass(frozen=True)
class MeetingRecord:
    """One CRM meeting as the planner sees it (``engine.meetings`` makes these from CRM JSON).
    ``booking_id`` is None for a meeting not linked to a booking (empty or blank field)."""
    id: str
    booking_id: str | None
    start: dt.datetime
    end: dt.datetime | None
    created: dt.datetime | None
    modified: dt.datetime
    status: str | None = None
    book: BookRequest | None = None    # set when the trigger is ticked and no booking is linked


@dataclasses.dataclass(frozen=True)
class DeletedMeeting:
    """An entry of CRM's deleted-records list."""
    id: str
    deleted_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class BookRequest:
    """What a ticked meeting asks to book, as CRM holds it (resolved against Bookings' catalog
    and the CRM contact only when the action runs)."""
    service: str                       # a Bookings service name or id
    staff: str | None                  # a staff name, email or id (None: the owner's email)
    owner_email: str | None
    time_zone: str | None              # the customer's zone (None: [book] default_time_zone)
    who_module: str | None             # Contacts | Leads
    who_id: str | None
    notes: str | None

    def fingerprint(self, start: dt.datetime) -> str:
        """What the booking depends on: a request changes only when one of these does."""
        return "|".join(str(v) for v in (stamp(start), self.service, self.staff, self.owner_email,
                                          self.time_zone, self.who_module, self.who_id))

    def to_row(self) -> dict:
        return _compact(dataclasses.asdict(self))

    @classmethod
    def from_row(cls, row: dict) -> "BookRequest":
        return cls(**{f.name: row.get(f.name) for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class Request:
    """One booking request's state (the ``requests`` table, keyed by the CRM meeting id)."""
    meeting_id: str
    state: RequestState
    fingerprint: str
    at: dt.datetime                    # when it entered this state
    booking_id: str | None = None
    reason: str | None = None
    partner: str | None = None         # the CRM meeting that carries the booking, once linked
    start: dt.datetime | None = None   # the booked time (the request meeting's start)
    end: dt.datetime | None = None

    def to_row(self) -> dict:
        return _compact({"meeting_id": self.meeting_id, "state": self.state,
                         "fingerprint": self.fingerprint, "at": stamp(self.at),
                         "booking_id": self.booking_id, "reason": self.reason,
                         "partner": self.partner, "start": stamp(self.start),
                         "end": stamp(self.end)})

    @classmethod
    def from_row(cls, row: dict) -> "Request":
        return cls(meeting_id=row["meeting_id"], state=RequestState(row["state"]),
                   fingerprint=row.get("fingerprint", ""), at=parse_stamp(row["at"]),
                   booking_id=row.get("booking_id"), reason=row.get("reason"),
                   partner=row.get("partner"), start=parse_stamp(row.get("start")),
                   end=parse_stamp(row.get("end")))


@dataclasses.dataclass(frozen=True)
class SeenMeeting:
    """What the daemon last saw of a booking-linked meeting: one snapshot row. ``booking_id``
    None: the meeting was linked once and its booking-id field has been cleared."""
    id: str
    booking_id: str | None
    start: dt.datetime
    end: dt.datetime | None
    modified: dt.datetime
    status: str | None = None
    deleted: bool = False
    last_action: Kind | None = None
    outcome: Result | None = None
    outcome_at: dt.datetime | None = None
    warning: str | None = None      # what the last action could not do exactly (``status``)

    @classmethod
    def from_record(cls, record: MeetingRecord, before: "SeenMeeting | None") -> "SeenMeeting":
        """The row for ``record``; what the daemon did about the meeting carries over."""
        return cls(id=record.id, booking_id=record.booking_id, start=record.start,
                   end=record.end, modified=record.modified, status=record.status,
                   last_action=before.last_action if before else None,
                   outcome=before.outcome if before else None,
                   outcome_at=before.outcome_at if before else None,
                   warning=before.warning if before else None)

    def to_row(self) -> dict:
        return _compact({
            "id": self.id, "booking_id": self.booking_id, "start": stamp(self.start),
            "end": stamp(self.end), "modified": stamp(self.modified), "status": self.status,
            "deleted": self.deleted, "last_action": self.last_action, "outcome": self.outcome,
            "outcome_at": stamp(self.outcome_at), "warning": self.warning})

    @classmethod
    def from_row(cls, row: dict) -> "SeenMeeting":
        return cls(id=row["id"], booking_id=row.get("booking_id"),
                   start=parse_stamp(row["start"]),
                   end=parse_stamp(row.get("end")), modified=parse_stamp(row["modified"]),
                   status=row.get("status"), deleted=bool(row.get("deleted")),
                   last_action=Kind(row["last_action"]) if row.get("last_action") else None,
                   outcome=Result(row["outcome"]) if row.get("outcome") else None,
                   outcome_at=parse_stamp(row.get("outcome_at")), warning=row.get("warning"))


@dataclasses.dataclass(frozen=True)
class Action:
    """An action recorded before it runs (write-ahead) and kept until it has an outcome."""
    meeting_id: str
    booking_id: str
    kind: Kind
    start: dt.datetime | None             # the meeting's start when planned: a reschedule's target
    end: dt.datetime | None
    old_start: dt.datetime | None         # what the snapshot held before (for logs and dry runs)
    modified: dt.datetime | None          # the CRM version that asked for this action
    planned_at: dt.datetime
    attempts: int = 0                     # transient failures so far
    not_before: dt.datetime | None = None  # backoff: not tried again before this instant
    last_error: str | None = None
    held: Hold | None = None              # waits for an operator (``retry`` / ``--allow-…``)
    request: BookRequest | None = None    # book: what to book
    in_flight: dt.datetime | None = None  # book: sent at (a reply may have been lost)
    partner: str | None = None            # link: Zoho's own meeting for the booking (None: none)

    def due(self, now: dt.datetime, *, released: frozenset = frozenset()) -> bool:
        """Due at ``now``, unless held by a guard not in ``released``."""
        if self.held and self.held not in released:
            return False
        return self.not_before is None or self.not_before <= now

    def to_row(self) -> dict:
        return _compact({
            "meeting_id": self.meeting_id, "booking_id": self.booking_id, "kind": self.kind,
            "start": stamp(self.start), "end": stamp(self.end), "old_start": stamp(self.old_start),
            "modified": stamp(self.modified), "planned_at": stamp(self.planned_at),
            "attempts": self.attempts, "not_before": stamp(self.not_before),
            "last_error": self.last_error, "held": self.held,
            "request": self.request.to_row() if self.request else None,
            "in_flight": stamp(self.in_flight), "partner": self.partner})

    @classmethod
    def from_row(cls, row: dict) -> "Action":
        return cls(meeting_id=row["meeting_id"], booking_id=row["booking_id"],
                   kind=Kind(row["kind"]), start=parse_stamp(row.get("start")),
                   end=parse_stamp(row.get("end")), old_start=parse_stamp(row.get("old_start")),
                   modified=parse_stamp(row.get("modified")),
                   planned_at=parse_stamp(row["planned_at"]), attempts=row.get("attempts", 0),
                   not_before=parse_stamp(row.get("not_before")), last_error=row.get("last_error"),
                   held=Hold(row["held"]) if row.get("held") else None,
                   request=BookRequest.from_row(row["request"]) if row.get("request") else None,
                   in_flight=parse_stamp(row.get("in_flight")), partner=row.get("partner"))


@dataclasses.dataclass(frozen=True)
class Failure:
    """An action Bookings refused (or whose reply we could not use), kept until the meeting
    changes again or an operator runs ``retry``."""
    meeting_id: str
    booking_id: str
    kind: Kind
    start: dt.datetime | None
    result: Result
    reason: str
    code: str
    at: dt.datetime
    attempts: int
    reverted_to: dt.datetime | None = None   # on_refused = "revert": the start put back in CRM
    request: BookRequest | None = None       # book: what was asked (``retry`` asks again)

    def to_row(self) -> dict:
        return _compact({
            "meeting_id": self.meeting_id, "booking_id": self.booking_id, "kind": self.kind,
            "start": stamp(self.start), "result": self.result, "reason": self.reason,
            "code": self.code, "at": stamp(self.at), "reverted_to": stamp(self.reverted_to),
            "attempts": self.attempts,
            "request": self.request.to_row() if self.request else None})

    @classmethod
    def from_row(cls, row: dict) -> "Failure":
        return cls(meeting_id=row["meeting_id"], booking_id=row["booking_id"],
                   kind=Kind(row["kind"]), start=parse_stamp(row.get("start")),
                   result=Result(row["result"]), reason=row.get("reason", ""),
                   code=row.get("code", ""), at=parse_stamp(row["at"]),
                   attempts=row.get("attempts", 1), reverted_to=parse_stamp(row.get("reverted_to")),
                   request=BookRequest.from_row(row["request"]) if row.get("request") else None)


@dataclasses.dataclass(frozen=True)
class Note:
    """Something to log; the pure parts of the engine return these instead of logging."""
    level: str        # debug | info | warning | error
    event: str
    fields: dict
