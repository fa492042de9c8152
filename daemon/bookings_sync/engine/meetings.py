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

from bookings_sync.zoho.timefmt import TimeFormatError, parse_crm_datetime

from .model import DeletedMeeting, MeetingRecord, Note

START, END = "Start_DateTime", "End_DateTime"
CREATED, MODIFIED = "Created_Time", "Modified_Time"


class RecordError(ValueError):
    """A CRM record we cannot use; the message names the record and the field."""


@dataclasses.dataclass(frozen=True)
class MeetingFields:
    """The org-specific API names of the Meetings fields the daemon reads."""
    booking_id: str = "BookingId"
    status: str = ""            # "" = no status field mapped

    def names(self) -> list[str]:
        """The CRM fields to request."""
        names = ["id", START, END, CREATED, MODIFIED, self.booking_id]
        if self.status:
            names.append(self.status)
        return list(dict.fromkeys(names))

    def parse(self, raw: dict) -> MeetingRecord | None:
        """One raw record → :class:`MeetingRecord`; ``None`` for a meeting not linked to a
        booking. Raises :class:`RecordError` for a record we cannot use."""
        meeting_id = raw.get("id")
        if not isinstance(meeting_id, (str, int)) or not str(meeting_id).isdigit():
            raise RecordError(f"CRM meeting with id {meeting_id!r}: id is not a numeric string")
        meeting_id = str(meeting_id)
        booking_id = raw.get(self.booking_id)
        if booking_id in (None, ""):
            return None
        if not isinstance(booking_id, (str, int)):
            raise RecordError(f"CRM meeting {meeting_id}: field {self.booking_id} holds "
                              f"{booking_id!r}, expected a Bookings id string")

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
            id=meeting_id, booking_id=str(booking_id).strip(), start=when(START, True),
            end=when(END, False), created=when(CREATED, False), modified=when(MODIFIED, True),
            status=status)

    def read(self, raws: Iterable[dict]) -> tuple[list[MeetingRecord], list[Note]]:
        """Records of a page (or several), and one note per record we could not use."""
        records, bad = [], []
        for raw in raws:
            try:
                record = self.parse(raw)
            except RecordError as exc:
                bad.append(Note("error", "crm.bad_record", {"reason": str(exc)}))
                continue
            if record is not None:
                records.append(record)
        return records, bad


def read_deleted(raws: Iterable[dict]) -> tuple[list[DeletedMeeting], list[Note]]:
    """Entries of the deleted-records list. A deletion with an unreadable ``deleted_time`` still
    counts (the meeting is gone); the time is then unknown and a note says why."""
    deleted, notes = [], []
    for raw in raws:
        meeting_id = str(raw.get("id", ""))
        if not meeting_id.isdigit():
            continue
        deleted_at = None
        if raw.get("deleted_time"):
            try:
                deleted_at = parse_crm_datetime(raw["deleted_time"])
            except TimeFormatError as exc:
                notes.append(Note("warning", "crm.bad_record", {
                    "meeting_id": meeting_id, "reason": f"deleted_time: {exc}"}))
        deleted.append(DeletedMeeting(meeting_id, deleted_at))
    return deleted, notes
