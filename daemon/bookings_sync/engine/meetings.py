"""CRM Meetings JSON → the engine's records: the only engine code that knows CRM field names.

The CRM client hands over pages of raw ``Events`` records; the planner wants
:class:`~bookings_sync.engine.model.MeetingRecord` values with aware UTC instants. This adapter
sits between them: it names the fields to ask for (``fields`` is mandatory from CRM v3) and turns
each record into a ``MeetingRecord`` — or into one ``crm.bad_record`` note naming the meeting
and the field, so one unreadable record never stops the others.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from bookings_sync.store import is_crm_id
from bookings_sync.zoho.timefmt import TimeFormatError, parse_crm_datetime

from .model import BookRequest, DeletedMeeting, MeetingRecord, Note

START, END = "Start_DateTime", "End_DateTime"
CREATED, MODIFIED = "Created_Time", "Modified_Time"
# A meeting's contact is Who_Id; a lead is What_Id with $se_module "Leads" (Zoho's Events API).
WHO, WHAT, SE_MODULE = "Who_Id", "What_Id", "$se_module"
OWNER, DESCRIPTION = "Owner", "Description"


class RecordError(ValueError):
    """A CRM record we cannot use; the message names the record and the field."""


@dataclasses.dataclass(frozen=True)
class BookFields:
    """The Meetings fields of a booking request (``[book]``)."""
    trigger: str                # the checkbox staff tick
    service: str
    staff: str = ""             # "" = the owner's email
    time_zone: str = ""         # "" = [book] default_time_zone

    def names(self) -> list[str]:
        return [n for n in (self.trigger, self.service, self.staff, self.time_zone, WHO, WHAT,
                            SE_MODULE, OWNER, DESCRIPTION) if n]


@dataclasses.dataclass(frozen=True)
class MeetingFields:
    """The org-specific API names of the Meetings fields the daemon reads."""
    booking_id: str = "BookingId"
    status: str = ""            # "" = no status field mapped
    book: BookFields | None = None

    def names(self) -> list[str]:
        """The CRM fields to request."""
        names = ["id", START, END, CREATED, MODIFIED, self.booking_id]
        if self.status:
            names.append(self.status)
        if self.book:
            names += self.book.names()
        return list(dict.fromkeys(names))

    def parse(self, raw: dict) -> MeetingRecord:
        """One raw record → :class:`MeetingRecord` (``booking_id`` None when the meeting is not
        linked: the field empty or blank). Raises :class:`RecordError` for a record we cannot
        use; a meeting id must be Zoho's digit string, never a key that could collide."""
        if not isinstance(raw, dict):
            raise RecordError(f"CRM list item {_short(raw)} is not a record")
        meeting_id = raw.get("id")
        # Zoho's ids are digit strings; a number (or anything else) is a broken record, never a
        # key that could collide with another meeting's.
        if not is_crm_id(meeting_id):
            raise RecordError(f"CRM meeting with id {_short(meeting_id)}: id is not a numeric "
                              f"string")
        booking_id = raw.get(self.booking_id)
        if isinstance(booking_id, int) and not isinstance(booking_id, bool):
            booking_id = str(booking_id)
        if booking_id is not None and not isinstance(booking_id, str):
            raise RecordError(f"CRM meeting {meeting_id}: field {self.booking_id} holds "
                              f"{_short(booking_id)}, expected a Bookings id string")
        booking_id = (booking_id or "").strip() or None
        if booking_id is not None and not booking_id.isprintable():
            raise RecordError(f"CRM meeting {meeting_id}: field {self.booking_id} holds "
                              f"{_short(booking_id)}, which has control characters")

        def when(field: str, required: bool):
            value = raw.get(field)
            if value in (None, ""):
                if required:
                    raise RecordError(f"CRM meeting {meeting_id}: field {field} is missing")
                return None
            try:
                return parse_crm_datetime(value)
            except TimeFormatError as exc:
                raise RecordError(f"CRM meeting {meeting_id}: field {field}: {exc}") from None

        status = raw.get(self.status) if self.status else None
        if status is not None and not isinstance(status, str):
            status = str(status)
        return MeetingRecord(
            id=meeting_id, booking_id=booking_id, start=when(START, True),
            end=when(END, False), created=when(CREATED, False), modified=when(MODIFIED, True),
            status=status, book=self._book_request(raw, meeting_id) if booking_id is None
            else None)

    def _book_request(self, raw: dict, meeting_id: str) -> BookRequest | None:
        """The booking a meeting asks for: only with the trigger ticked (a JSON true)."""
        fields = self.book
        if fields is None or raw.get(fields.trigger) is not True:
            return None

        def text(name: str, *, one_line: bool = True) -> str | None:
            value = raw.get(name) if name else None
            if value is None or isinstance(value, (dict, list)):
                return None
            value = str(value).strip()
            if one_line and value and not value.isprintable():
                raise RecordError(f"CRM meeting {meeting_id}: field {name} has control "
                                  f"characters")
            return value or None

        def lookup_id(name: str) -> str | None:
            value = raw.get(name)
            record_id = value.get("id") if isinstance(value, dict) else None
            return str(record_id) if isinstance(record_id, (str, int)) else None

        who_module, who_id = ("Contacts", lookup_id(WHO)) if lookup_id(WHO) else (None, None)
        if who_id is None and raw.get(SE_MODULE) == "Leads" and lookup_id(WHAT):
            who_module, who_id = "Leads", lookup_id(WHAT)
        owner = raw.get(OWNER)
        owner_email = owner.get("email") if isinstance(owner, dict) else None
        return BookRequest(service=text(fields.service) or "", staff=text(fields.staff),
                           owner_email=owner_email if isinstance(owner_email, str) else None,
                           time_zone=text(fields.time_zone), who_module=who_module,
                           who_id=who_id, notes=text(DESCRIPTION, one_line=False))

    def read(self, raws: Iterable) -> tuple[list[MeetingRecord], list[Note]]:
        """Records of a page (or several), and one ``crm.bad_record`` note per item we could
        not use — naming the meeting and the field — so one bad record never stops the rest."""
        records, bad = [], []
        for raw in raws:
            try:
                records.append(self.parse(raw))
            except RecordError as exc:
                meeting_id = raw.get("id") if isinstance(raw, dict) else None
                bad.append(Note("error", "crm.bad_record", {
                    "meeting_id": meeting_id if isinstance(meeting_id, str) else None,
                    "reason": str(exc)}))
        return records, bad


def _short(value, limit: int = 60) -> str:
    """A value for a one-line message: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def read_deleted(raws: Iterable) -> tuple[list[DeletedMeeting], list[Note]]:
    """Entries of the deleted-records list. A deletion with an unreadable ``deleted_time`` still
    counts (the meeting is gone); the time is then unknown and a note says why. An entry without
    a digit-string id is a bad record: it could name no meeting of ours."""
    deleted, notes = [], []
    for raw in raws:
        meeting_id = raw.get("id") if isinstance(raw, dict) else None
        if not is_crm_id(meeting_id):
            notes.append(Note("error", "crm.bad_record", {
                "reason": f"deleted-records entry {_short(raw)}: no numeric id"}))
            continue
        deleted_at = None
        if raw.get("deleted_time"):
            try:
                deleted_at = parse_crm_datetime(raw["deleted_time"])
            except TimeFormatError as exc:
                notes.append(Note("error", "crm.bad_record", {
                    "meeting_id": meeting_id, "reason": f"deleted_time: {exc}"}))
        deleted.append(DeletedMeeting(meeting_id, deleted_at))
    return deleted, notes
