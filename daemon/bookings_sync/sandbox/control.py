"""``POST /_sandbox/<verb>`` — the control surface for drivers in another process.

Each verb is a thin JSON wrapper over a :class:`~bookings_sync.sandbox.Sandbox` method, so a
subprocess demo or soak driver can do exactly what an in-process test does. Request bodies are
JSON objects; datetimes travel as ISO 8601 strings *with* an offset (a naive one is refused:
"which zone?" is the bug this project exists to avoid). Replies are JSON: ``{"ok": true}`` or the
verb's result; a bad request is HTTP 400 ``{"error": "..."}``, an unknown verb 404. These
requests are not Zoho traffic: they are neither counted in ``calls`` nor logged, and faults never
apply to them.

Verbs (body keys):
    seed (count, rng_seed)                 → {"pairs": [[meeting_id, booking_id], ...]}
    book (start, time_zone, duration_minutes, staff_id, customer_time_zone, service_id)
                                           → {"meeting_id", "booking_id"}
    crm_move (meeting_id, start) · crm_edit (meeting_id, fields{...}) · crm_cancel (meeting_id)
    crm_delete (meeting_id)
    bookings_reschedule (booking_id, start) · bookings_cancel (booking_id)
    bookings_set_status (booking_id, status)
    meeting (meeting_id) · appointment (booking_id) · meeting_for_booking (booking_id)
    set_crm_time_zone (name) · set_bookings_daily_limit (limit|null)
    inject (path, kind, count, <the kind's parameters>) · clear_faults · armed_faults → [...]
        faults.py lists the kinds and parameters; "count": null arms until clear_faults, e.g.
        {"path": "/crm/v8/Events", "kind": "page_endless", "count": null}
        {"path": "rescheduleappointment", "kind": "html", "status": 502, "count": 2}
    crm_raw (meeting_id, fields{...}, instants{...}) — fields go on the wire verbatim (any JSON);
        instants are ISO datetimes with offset stored typed (e.g. Modified_Time 2099-01-01)
    crm_clone (meeting_id)                 → {"meeting_id"}
    catcher (clear)                        → {"url", "requests": [{"method", "target",
        "headers": [[name, value], ...], "body"}]}; body as latin-1 text (each byte one
        character); unmasked by design; "clear": true empties it after reading
    expire_tokens · calls → {endpoint: n} · request_log → [entry, ...] · reset_counters
    clock (set, advance) → {"now"}   ({} just reads it; a real clock keeps ticking from a set)
  Bookings catalog and switches (see bookings_surface.py):
    add_workspace (workspace_id, name, time_zone, hours, currency, time_format, slot_minutes)
    add_service (service_id, name, duration_minutes, buffer_minutes, service_type, staff_ids,
                 let_customer_select_staff, workspace_id, cost)
    add_staff (staff_id, name, email, service_ids, hours, designation)
    set_business_hours (hours, staff_id, workspace_id) · catalog → {workspaces, services, staff}
    set_integration (meetings_for_api_bookings, delay_seconds)
    set_bookings_wire (fetch_list_key, fetch_needs_data_field, phone_required)
    bookings_budget → {day, used, limit, left, time_zone}
    crm_create_contact (fields{...}) · crm_create_lead (fields{...})   → {"id"}
    crm_create_meeting (fields{Start_DateTime, Who_Id, What_Id, $se_module, ...}) → {"id"}
    crm_record (module, id)
    issue_grant_code (scopes, minutes, data_center) → {"code"}
    credentials_with (scopes) → {client_id, client_secret, refresh_token}
    set_api_domain (url|null) · set_if_modified_since (mode) · set_bookings_scope_refusal (shape)
"""

from __future__ import annotations

import datetime as dt

from .messages import Reply
from .world import Refusal


def _when(text) -> dt.datetime:
    value = dt.datetime.fromisoformat(str(text))
    if value.tzinfo is None:
        raise ValueError(f"datetime {text!r} has no offset")
    return value.astimezone(dt.timezone.utc)


def _jsonable(value):
    """Internal copies hold aware datetimes; JSON gets ISO strings."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _edit_fields(fields: dict) -> dict:
    # Datetime fields arrive as ISO strings; the model stores aware UTC datetimes.
    out = {}
    for key, value in fields.items():
        if key in ("Start_DateTime", "End_DateTime") and isinstance(value, str):
            value = _when(value)
        out[key] = value
    return out


def handle(sandbox, request):
    body = request.json if isinstance(request.json, dict) else {}
    verb = request.path.rstrip("/").rsplit("/", 1)[-1]
    if request.method != "POST":
        return Reply(405, {"error": "control verbs are POST with a JSON body"})
    sb = sandbox
    actions = {
        "seed": lambda: {"pairs": sb.seed(int(body.get("count", 1)),
                                          int(body.get("rng_seed", 0)))},
        "book": lambda: dict(zip(("meeting_id", "booking_id"), sb.book(
            _when(body["start"]), time_zone=body.get("time_zone", "UTC"),
            duration_minutes=int(body.get("duration_minutes", 30)),
            staff_id=body.get("staff_id", "staff-1"),
            customer_time_zone=body.get("customer_time_zone"),
            service_id=body.get("service_id", "svc-1")))),
        "crm_move": lambda: sb.crm_move(body["meeting_id"], _when(body["start"])),
        "crm_edit": lambda: sb.crm_edit(body["meeting_id"],
                                        **_edit_fields(body.get("fields") or {})),
        "crm_cancel": lambda: sb.crm_cancel(body["meeting_id"]),
        "crm_delete": lambda: sb.crm_delete(body["meeting_id"]),
        "bookings_reschedule": lambda: sb.bookings_reschedule(body["booking_id"],
                                                              _when(body["start"])),
        "bookings_cancel": lambda: sb.bookings_cancel(body["booking_id"]),
        "bookings_set_status": lambda: sb.bookings_set_status(body["booking_id"],
                                                              body["status"]),
        "meeting": lambda: sb.meeting(body["meeting_id"]),
        "appointment": lambda: sb.appointment(body["booking_id"]),
        "meeting_for_booking": lambda: {"meeting_id": sb.meeting_for_booking(body["booking_id"])},
        "set_crm_time_zone": lambda: sb.set_crm_time_zone(body["name"]),
        "set_bookings_daily_limit": lambda: sb.set_bookings_daily_limit(
            None if body.get("limit") is None else int(body["limit"])),
        "inject": lambda: sb.inject(body["path"], str(body["kind"]), _count(body),
                                    **{k: v for k, v in body.items()
                                       if k not in ("path", "kind", "count")}),
        "clear_faults": sb.clear_faults,
        "armed_faults": sb.armed_faults,
        "crm_raw": lambda: sb.crm_raw(body["meeting_id"], **(body.get("fields") or {}),
                                      **{k: _when(v) for k, v in
                                         (body.get("instants") or {}).items()}),
        "crm_clone": lambda: {"meeting_id": sb.crm_clone(body["meeting_id"])},
        "catcher": lambda: _catcher(sb, bool(body.get("clear"))),
        "expire_tokens": sb.expire_tokens,
        "calls": lambda: dict(sb.calls),
        "request_log": lambda: list(sb.request_log),
        "reset_counters": sb.reset_counters,
        "clock": lambda: _clock(sb, body),
        "add_workspace": lambda: sb.add_workspace(body["workspace_id"], body["name"],
                                                  **_options(body, "workspace_id", "name")),
        "add_service": lambda: sb.add_service(body["service_id"], body["name"],
                                              int(body["duration_minutes"]),
                                              **_options(body, "service_id", "name",
                                                         "duration_minutes")),
        "add_staff": lambda: sb.add_staff(body["staff_id"], body["name"], body["email"],
                                          **_options(body, "staff_id", "name", "email")),
        "set_business_hours": lambda: sb.set_business_hours(
            body.get("hours"), staff_id=body.get("staff_id"),
            workspace_id=body.get("workspace_id", "ws-1")),
        "catalog": sb.catalog,
        "set_integration": lambda: sb.set_integration(**_options(body)),
        "set_bookings_wire": lambda: sb.set_bookings_wire(**_options(body)),
        "bookings_budget": sb.bookings_budget,
        "crm_create_contact": lambda: {"id": sb.crm_create_contact(**(body.get("fields") or {}))},
        "crm_create_lead": lambda: {"id": sb.crm_create_lead(**(body.get("fields") or {}))},
        "crm_create_meeting": lambda: {"id": sb.crm_create_meeting(
            **_edit_fields(body.get("fields") or {}))},
        "crm_record": lambda: sb.crm_record(body["module"], body["id"]),
        "issue_grant_code": lambda: {"code": sb.issue_grant_code(
            body["scopes"], float(body.get("minutes", 3)), body.get("data_center"))},
        "credentials_with": lambda: sb.credentials_with(body["scopes"]),
        "set_api_domain": lambda: sb.set_api_domain(body.get("url")),
        "set_if_modified_since": lambda: sb.set_if_modified_since(body["mode"]),
        "set_bookings_scope_refusal": lambda: sb.set_bookings_scope_refusal(body["shape"]),
    }
    action = actions.get(verb)
    if action is None:
        return Reply(404, {"error": f"unknown control verb {verb!r}",
                           "verbs": sorted(actions)})
    try:
        result = action()
    except (KeyError, ValueError, TypeError, LookupError, Refusal) as exc:
        return Reply(400, {"error": f"{type(exc).__name__}: {exc}"})
    return Reply(200, _jsonable(result) if result is not None else {"ok": True})


def _count(body: dict) -> int | None:
    count = body.get("count", 1)
    return None if count is None else int(count)


def _catcher(sb, clear: bool) -> dict:
    catcher = sb.catcher
    requests = catcher.requests
    if clear:
        catcher.clear()
    return {"url": catcher.url,
            "requests": [dict(r, headers=[list(h) for h in r["headers"]],
                              body=r["body"].decode("latin-1")) for r in requests]}


def _options(body: dict, *positional: str) -> dict:
    """The body's keys other than the positional ones, as keyword arguments (an unknown one
    is a TypeError, hence a 400 naming it)."""
    return {k: v for k, v in body.items() if k not in positional}


def _clock(sb, body: dict) -> dict:
    if "set" in body or "advance" in body:
        if not hasattr(sb.clock, "advance"):
            raise TypeError("this sandbox's clock cannot be set")
        if "set" in body:
            sb.clock.set(_when(body["set"]))
        if "advance" in body:
            sb.clock.advance(float(body["advance"]))
    return {"now": sb.clock.now()}
