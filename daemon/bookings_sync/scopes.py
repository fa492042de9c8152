"""The OAuth scopes a configuration needs — the one place that says which, and why.

:func:`required` maps a configuration (or, without one, the default features) to the minimal
list of :class:`Scope` — name, why it is needed, Zoho's page that names it. ``auth
--print-scopes`` prints them as the comma-separated string the API console's "Generate Code"
takes; ``check`` and ``auth`` name the scope a refused call lacks from the same constants.

Per feature (sources: the "Scope" section of each Zoho page):
- the sync itself reads changed Meetings (GET ``Events``, get-records), reads one meeting back
  before reverting it (GET ``Events/{id}``) and, with ``on_delete = "cancel"``, lists deleted
  ones (GET ``Events/deleted``, get-deleted-records): all three need
  ``ZohoCRM.modules.events.READ`` — Zoho has no separate scope for the deleted list;
- ``check`` reads the Meetings field list (GET ``settings/fields``):
  ``ZohoCRM.settings.fields.READ`` (Zoho's OpenAPI fields.json);
- Bookings (getappointment, rescheduleappointment, updateappointment): ``zohobookings.data.CREATE``,
  the only Bookings scope Zoho documents; it covers reads too (get-appointment page);
- ``on_refused = "revert"`` writes the meeting back (PUT ``Events``, update-records):
  ``ZohoCRM.modules.events.UPDATE``.
Booking from CRM (``[book]``) has its own branch, :func:`_book_from_crm`.

:func:`covers` says whether a granted scope list (a token reply's ``scope``) includes a scope,
counting the wider names Zoho documents: ``.ALL`` of the same or the parent group
(``ZohoCRM.modules.ALL``), ``ZohoCRM.modules.<OPERATION>`` (every module, OpenAPI common.json),
and ``WRITE`` for CREATE / UPDATE / DELETE (CRM "Select API Scopes"). Names compare without
regard to case (Zoho's own pages mix ``Modules.Events`` and ``modules.events``).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from bookings_sync.config import BookConfig, SyncConfig
from bookings_sync.engine.model import OnBooked, OnDelete, OnRefused
from bookings_sync.zoho.bookings import SCOPE as BOOKINGS

_CRM_DOCS = "https://www.zoho.com/crm/developer/docs/api/v8"

EVENTS_READ = "ZohoCRM.modules.events.READ"
EVENTS_UPDATE = "ZohoCRM.modules.events.UPDATE"
FIELDS_READ = "ZohoCRM.settings.fields.READ"


@dataclasses.dataclass(frozen=True)
class Scope:
    name: str
    why: str
    source: str


def required(config=None) -> list[Scope]:
    """The scopes ``config`` needs, in the order the API console shows them; ``None``: the
    default features (``on_delete = "cancel"``, ``on_refused = "keep"``, no booking from CRM)."""
    sync = config.sync if config is not None else SyncConfig()
    deleted = (f" and, with on_delete = \"{OnDelete.CANCEL}\", list deleted Meetings "
               f"(GET Events/deleted)" if sync.on_delete is OnDelete.CANCEL else "")
    scopes = [Scope(EVENTS_READ,
                    f"read the Meetings changed since the last poll (GET Events), read one back "
                    f"before reverting it{deleted}",
                    f"{_CRM_DOCS}/get-records.html, {_CRM_DOCS}/get-deleted-records.html")]
    if sync.on_refused is OnRefused.REVERT:
        scopes.append(Scope(EVENTS_UPDATE,
                            f"on_refused = \"{OnRefused.REVERT}\": put a meeting Bookings refused "
                            f"to move back to Bookings' time (PUT Events)",
                            f"{_CRM_DOCS}/update-records.html"))
    scopes.append(Scope(FIELDS_READ,
                        "check reads the Meetings field list to prove booking_id_field and "
                        "status_field exist (GET settings/fields)",
                        "Zoho's CRM OpenAPI fields.json (security: ZohoCRM.settings.fields.read)"))
    scopes.append(Scope(BOOKINGS,
                        "read an appointment before acting (getappointment), reschedule it, "
                        "cancel / complete / mark it no-show (updateappointment)",
                        "https://www.zoho.com/bookings/help/api/v1/get-appointment.html"))
    scopes += _book_from_crm(config.book if config is not None else BookConfig())
    unique = {}
    for scope in scopes:                # revert and booking both need Events UPDATE: once
        unique.setdefault(scope.name, scope)
    return list(unique.values())


def _book_from_crm(book) -> list[Scope]:
    """Booking from CRM (``[book]``), once ``trigger_field`` is set: it reads the meeting's
    contact or lead, writes the request meeting back (result, trigger, the booking id when Zoho
    makes no meeting of its own, the description onto Zoho's meeting) and, with
    ``on_booked = "delete"``, deletes the request meeting."""
    if not book.enabled:
        return []
    scopes = [
        Scope("ZohoCRM.modules.contacts.READ",
              "booking from CRM: read the meeting's contact (name, email, phone)",
              f"{_CRM_DOCS}/get-records.html"),
        Scope("ZohoCRM.modules.leads.READ",
              "booking from CRM: read the meeting's lead (name, email, phone)",
              f"{_CRM_DOCS}/get-records.html"),
        Scope(EVENTS_UPDATE,
              "booking from CRM: tell staff the result and clear the trigger on the request "
              "meeting; link it to the booking when Zoho makes no meeting (PUT Events)",
              f"{_CRM_DOCS}/update-records.html"),
    ]
    if book.on_booked is OnBooked.DELETE:
        scopes.append(Scope("ZohoCRM.modules.events.DELETE",
                            "booking from CRM: remove the request meeting once Zoho's own "
                            "meeting for the booking exists (DELETE Events)",
                            f"{_CRM_DOCS}/delete-records.html"))
    return scopes


def scope_string(scopes: Iterable[Scope]) -> str:
    """Comma-separated, as the API console's "Generate Code" and ``sandbox --grant-code`` take."""
    return ",".join(scope.name for scope in scopes)


def covers(granted: Iterable[str], needed: str) -> bool:
    """Does a token with ``granted`` scopes hold ``needed`` (see the module docstring)?"""
    held = {name.lower() for name in granted}
    service, *path, operation = needed.lower().split(".")
    names = {needed.lower()}
    operations = {operation, "all"} | ({"write"} if operation in ("create", "update", "delete")
                                       else set())
    for depth in range(1, len(path) + 1):
        names.add(".".join([service, *path[:depth], "all"]))
    if path[:1] == ["modules"]:
        names |= {f"{service}.modules.{op}" for op in operations}
    names |= {".".join([service, *path, op]) for op in operations}
    return bool(held & names)
