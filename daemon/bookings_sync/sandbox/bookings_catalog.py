"""Zoho Bookings' catalog verbs: ``GET workspaces``, ``services``, ``staffs``, ``availableslots``.

Parameters as Zoho's API v1 pages name them (fetch-services: ``workspace_id`` mandatory,
``service_id``, ``staff_id``; fetch-staff: ``staff_id``, ``service_id``, ``workspace_id``,
``staff_email`` matched by "contains"; fetch-availability: ``service_id``, one of
``staff_id`` / ``group_id`` / ``resource_id``, ``selected_date``). Lists sit at
``returnvalue.data`` (public clients read them there); services add ``next_page_available``
and ``page`` as public clients' samples show. Availability answers ``{"reponse": true, "data":
["10:00", …]}`` — Zoho's own sample, misspelt key included. A filter that matches nothing is a
``returnvalue.status = "failure"`` with "There is no active <thing> for the criteria", the
wording a public client quotes for Zoho's resources list (applying it here is the sandbox's
choice). Each function takes the world and the request's ``param`` lookup and returns the
``returnvalue``, or raises :class:`Refusal`.
"""

from __future__ import annotations

from . import availability, wire
from .appointments import Refusal


def _none_for(thing: str) -> Refusal:
    return Refusal(f"There is no active {thing} for the criteria")


def workspaces(world, p):
    catalog = world.catalog
    rows = [w for w in catalog.workspaces.values()
            if not p("workspace_id") or w["id"] == p("workspace_id")]
    if not rows:
        raise _none_for("workspace")
    return {"data": [wire.render_workspace(w) for w in rows]}


def services(world, p):
    catalog = world.catalog
    if not p("workspace_id"):
        raise Refusal("workspace_id is mandatory")
    rows = [s for s in catalog.services.values()
            if s["workspace_id"] == p("workspace_id")
            and (not p("service_id") or s["id"] == p("service_id"))
            and (not p("staff_id") or p("staff_id") in s["staff"])]
    if not rows:
        raise _none_for("service")
    return {"data": [wire.render_service(s, catalog.workspace_of(s)) for s in rows],
            "next_page_available": False, "page": 1}


def staffs(world, p):
    catalog = world.catalog
    out = []
    for staff in catalog.staff.values():
        assigned = [s for s in catalog.services.values() if staff["id"] in s["staff"]]
        if ((p("staff_id") and staff["id"] != p("staff_id"))
                or (p("service_id") and p("service_id") not in [s["id"] for s in assigned])
                or (p("workspace_id")
                    and p("workspace_id") not in [s["workspace_id"] for s in assigned])
                or (p("staff_email") and p("staff_email").lower() not in staff["email"].lower())):
            continue
        out.append(wire.render_staff(staff, assigned))
    if not out:
        raise _none_for("staff")
    return {"data": out}


def available_slots(world, p):
    staff_id = p("staff_id") or p("group_id") or p("resource_id")
    if not (p("service_id") and staff_id and p("selected_date")):
        raise Refusal("service_id, one of staff_id/group_id/resource_id and selected_date are "
                      "required")
    service = availability.service_and_staff(world.catalog, p("service_id"), staff_id)
    try:
        day = wire.parse_bookings_date(p("selected_date"))
    except ValueError as exc:
        raise Refusal(str(exc)) from None
    return {"reponse": True, "data": availability.available_slots(world, service, staff_id, day)}


VERBS = {
    ("GET", "workspaces"): workspaces,
    ("GET", "services"): services,
    ("GET", "staffs"): staffs,
    ("GET", "availableslots"): available_slots,
}
