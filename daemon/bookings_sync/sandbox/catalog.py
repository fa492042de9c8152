"""The Bookings catalog: workspaces, services, staff and business hours.

What ``GET workspaces`` / ``services`` / ``staffs`` list and what ``POST appointment`` and
``GET availableslots`` check against. Keys follow Zoho's Bookings API v1 pages (fetch-services,
fetch-staff) and public clients' sample replies (docs/zoho-bookings.md): a service has ``id``,
``name``, ``duration`` ("30 mins"), ``buffertime``, ``service_type``, ``assigned_staffs``,
``let_customer_select_staff``; a staff member has ``id``, ``name``, ``email``,
``assigned_services``.

Business hours belong to a workspace (default Mon–Fri 09:00–18:00) and may be overridden per
staff member; they are wall times in the workspace's time zone. Zoho documents neither default;
these are the sandbox's choice. Resources and staff groups are not modelled: a ``resource_id``
or ``group_id`` is looked up among the staff (the sandbox's choice, said in docs/zoho-bookings.md).

A catalog is plain data guarded by the world's lock; it never touches appointments.
"""

from __future__ import annotations

import copy
import datetime as dt
import re

import pytz

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OFFICE_HOURS = {day: ("09:00", "18:00") for day in DAYS[:5]}
DEFAULT_WORKSPACE = "ws-1"
SERVICE_TYPES = ("APPOINTMENT", "RESOURCE", "CLASS", "COLLECTIVE")
_HHMM = re.compile(r"^(?:([01]?\d|2[0-3]):([0-5]\d)|(24):(00))$")


class CatalogError(ValueError):
    """A catalog edit that makes no sense (unknown id, bad hours): one clear line."""


def _minutes(text: str) -> int:
    match = _HHMM.match(str(text).strip())
    if not match:
        raise CatalogError(f"business hours need HH:MM, got {text!r}")
    hour, minute = (g for g in match.groups() if g is not None)
    return int(hour) * 60 + int(minute)


def normalise_hours(hours: dict) -> dict:
    """``{"mon": ["09:00", "18:00"], "sat": None, ...}`` → ``{"mon": ("09:00", "18:00")}``
    (days missing or None are closed)."""
    out = {}
    for day, span in (hours or {}).items():
        key = str(day).lower()[:3]
        if key not in DAYS:
            raise CatalogError(f"unknown day {day!r}: one of {', '.join(DAYS)}")
        if span is None:
            continue
        opens, closes = span
        if _minutes(opens) >= _minutes(closes):
            raise CatalogError(f"{key}: opening {opens} is not before closing {closes}")
        out[key] = (str(opens), str(closes))
    return out


class Catalog:
    def __init__(self, time_zone: str = "UTC"):
        pytz.timezone(time_zone)
        self.workspaces: dict[str, dict] = {}
        self.services: dict[str, dict] = {}
        self.staff: dict[str, dict] = {}
        self.add_workspace(DEFAULT_WORKSPACE, "Sandbox Workspace", time_zone=time_zone)
        for n in range(8):      # Sandbox.seed spreads its bookings over staff-0 … staff-7
            self.add_staff(f"staff-{n}", f"Staff {n}", f"staff{n}@sandbox.invalid")
        self.add_service("svc-1", "Consultation (svc-1)", 30,
                         staff_ids=[f"staff-{n}" for n in range(8)])
        self.add_service("svc-2", "Extended consultation", 60, buffer_minutes=15,
                         staff_ids=["staff-2"], let_customer_select_staff=False)

    # -- edits --------------------------------------------------------------------------------

    def add_workspace(self, workspace_id: str, name: str, *, time_zone: str = "UTC",
                      hours: dict | None = None, currency: str = "USD",
                      time_format: str = "24h", slot_minutes: int = 15) -> dict:
        pytz.timezone(time_zone)
        if time_format not in ("24h", "12h"):
            raise CatalogError(f"time_format {time_format!r}: 24h | 12h")
        if int(slot_minutes) <= 0:
            raise CatalogError("slot_minutes must be positive")
        workspace = {"id": str(workspace_id), "name": name, "time_zone": time_zone,
                     "hours": normalise_hours(OFFICE_HOURS if hours is None else hours),
                     "currency": currency, "time_format": time_format,
                     "slot_minutes": int(slot_minutes)}
        self.workspaces[workspace["id"]] = workspace
        return workspace

    def add_staff(self, staff_id: str, name: str, email: str, *,
                  service_ids: list[str] = (), hours: dict | None = None,
                  designation: str = "Consultant") -> dict:
        staff = {"id": str(staff_id), "name": name, "email": email, "designation": designation,
                 "hours": None if hours is None else normalise_hours(hours)}
        self.staff[staff["id"]] = staff
        for service_id in service_ids:
            self.assign(service_id, staff["id"])
        return staff

    def add_service(self, service_id: str, name: str, duration_minutes: int, *,
                    buffer_minutes: int = 0, service_type: str = "APPOINTMENT",
                    staff_ids: list[str] = (), let_customer_select_staff: bool = True,
                    workspace_id: str = DEFAULT_WORKSPACE, cost: float = 0.0) -> dict:
        if workspace_id not in self.workspaces:
            raise CatalogError(f"unknown workspace {workspace_id!r}")
        if service_type not in SERVICE_TYPES:
            raise CatalogError(f"service_type {service_type!r}: one of {SERVICE_TYPES}")
        if int(duration_minutes) <= 0 or int(buffer_minutes) < 0:
            raise CatalogError("duration must be positive and buffer time not negative")
        service = {"id": str(service_id), "name": name, "duration": int(duration_minutes),
                   "buffer": int(buffer_minutes), "service_type": service_type,
                   "staff": {}, "let_customer_select_staff": bool(let_customer_select_staff),
                   "workspace_id": workspace_id, "cost": float(cost)}
        self.services[service["id"]] = service
        for staff_id in staff_ids:
            self.assign(service["id"], staff_id)
        return service

    def assign(self, service_id: str, staff_id: str) -> None:
        if service_id not in self.services:
            raise CatalogError(f"unknown service {service_id!r}")
        if staff_id not in self.staff:
            raise CatalogError(f"unknown staff member {staff_id!r}")
        # A dict as an ordered set: seeding thousands of staff must not scan a list each time.
        self.services[service_id]["staff"][staff_id] = True

    def set_hours(self, hours: dict, *, staff_id: str | None = None,
                  workspace_id: str = DEFAULT_WORKSPACE) -> None:
        """Staff hours override the workspace's; ``hours=None`` with a staff id removes that."""
        if staff_id is not None:
            if staff_id not in self.staff:
                raise CatalogError(f"unknown staff member {staff_id!r}")
            self.staff[staff_id]["hours"] = None if hours is None else normalise_hours(hours)
            return
        if workspace_id not in self.workspaces:
            raise CatalogError(f"unknown workspace {workspace_id!r}")
        self.workspaces[workspace_id]["hours"] = normalise_hours(hours)

    def ensure(self, service_id: str, staff_id: str) -> None:
        """A booking made in Bookings itself (``Sandbox.book``) names a real service and staff
        member: add whichever the catalog does not know yet, and the assignment."""
        if staff_id not in self.staff:
            self.add_staff(staff_id, f"Staff {staff_id}", f"{staff_id}@sandbox.invalid")
        if service_id not in self.services:
            self.add_service(service_id, f"Consultation ({service_id})", 30)
        self.assign(service_id, staff_id)

    # -- questions ----------------------------------------------------------------------------

    def workspace_of(self, service: dict) -> dict:
        return self.workspaces[service["workspace_id"]]

    def open_spans(self, staff_id: str, service: dict, day: dt.date) -> list[tuple]:
        """The staff member's working span on ``day`` as aware UTC datetimes ([] when closed)."""
        workspace = self.workspace_of(service)
        hours = self.staff[staff_id]["hours"] or workspace["hours"]
        span = hours.get(DAYS[day.weekday()])
        if span is None:
            return []
        zone = pytz.timezone(workspace["time_zone"])
        midnight = dt.datetime(day.year, day.month, day.day)
        opens, closes = (zone.localize(midnight + dt.timedelta(minutes=_minutes(t)))
                         for t in span)
        return [(opens.astimezone(pytz.utc), closes.astimezone(pytz.utc))]

    def snapshot(self) -> dict:
        services = {k: dict(v, staff=list(v["staff"])) for k, v in self.services.items()}
        return copy.deepcopy({"workspaces": self.workspaces, "services": services,
                              "staff": self.staff})
