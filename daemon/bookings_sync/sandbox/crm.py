"""Zoho CRM ``/crm/v2`` … ``/crm/v8``: records of Events (Meetings), Contacts and Leads, and the
metadata calls (``metadata.py``).

Follows shared/zoho-api.md and Zoho's OpenAPI (record.json, fields.json, cancel_meetings.json):
``fields`` mandatory from v3 (REQUIRED_PARAM_MISSING), ``sort_by`` id | Created_Time |
Modified_Time with id as tie-breaker, ``page`` × ``per_page`` ≤ 2,000 (else
DISCRETE_PAGINATION_LIMIT_EXCEEDED, "You can only get the first 2000 records without using
page_token param", the message Zoho's v8 get-records page gives) and ``page_token`` beyond,
``If-Modified-Since`` (ISO 8601 with offset), 204 with an empty body when nothing matches, the
full ``info`` object. Datetimes are rendered with the CRM user's offset. Errors carry code,
details, message and status, with messages from the spec's enum where it has one. Every call is
checked against the token's scopes first (``scopes.py``: 401 OAUTH_SCOPE_MISMATCH).

``If-Modified-Since`` keeps records modified strictly after the instant by default. Zoho's pages
say only "recently modified records" (get-records, get-deleted-records); Airbyte's connector
assumes Zoho filters inclusively and adds a second. Nothing in Zoho's docs settles it, so both
are offered: ``Sandbox(if_modified_since="inclusive")`` keeps records modified at or after it,
in every module's list and in the deleted lists.

Contacts and Leads support list, get, deleted and DELETE; PUT and the cancel action are Events
only. Any other module name → 400 INVALID_MODULE.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

from . import metadata, scopes, wire
from .messages import Reply, crm_error

_PATH = re.compile(r"^/crm/v(\d+)/(.*)$")
MAX_OFFSET = 2000
MAX_TOKEN_RECORDS = 100_000
SORTABLE = ("id", "Created_Time", "Modified_Time")
error = crm_error
_KINDS_ONE = {"GET": "list", "PUT": "update", "DELETE": "delete", "POST": "insert"}
_KINDS_BY_ID = {"GET": "get", "DELETE": "delete", "PUT": "update"}


def endpoint_name(method: str, path: str) -> str:
    """Events keep their short names (``crm.list``, ``crm.get`` …); Contacts and Leads get
    ``crm.contacts.list`` …; metadata ``crm.fields``, ``crm.modules``, ``crm.module``,
    ``crm.org``, ``crm.users``."""
    match = _PATH.match(path)
    parts = (match.group(2).strip("/") if match else "").split("/")
    if parts[:2] == ["settings", "fields"]:
        return "crm.fields"
    if parts[:2] == ["settings", "modules"]:
        return "crm.modules" if len(parts) == 2 else "crm.module"
    if parts[0] in ("org", "users"):
        return "crm." + parts[0]
    if parts[0] == "Events":
        prefix = "crm."
    elif parts[0] in ("Contacts", "Leads"):
        prefix = f"crm.{parts[0].lower()}."
    else:
        return "crm.other"
    if len(parts) == 1:
        return prefix + _KINDS_ONE.get(method, "other")
    if parts[1] == "deleted":
        return prefix + "deleted"
    if len(parts) == 4 and parts[2:] == ["actions", "cancel"]:
        return prefix + "cancel"
    if len(parts) == 2:
        return prefix + _KINDS_BY_ID.get(method, "other")
    return prefix + "other"


def handle(sandbox, request):
    match = _PATH.match(request.path)
    if not match or not 2 <= int(match.group(1)) <= 8:
        return error(404, "INVALID_URL_PATTERN",
                     "Please check if the URL trying to access is a correct one")
    version = int(match.group(1))
    parts = match.group(2).strip("/").split("/")
    world = sandbox.world
    with world.lock:
        if "Authorization" not in request.headers:
            return error(401, "AUTHENTICATION_FAILURE", "Authentication failed")
        if not world.token_valid(request.token):
            return error(401, "INVALID_TOKEN", "invalid oauth token")
        if not scopes.grants(world.scopes_of(request.token),
                             *scopes.crm_need(request.method, parts)):
            return scopes.crm_refusal()
        if parts[0] in ("settings", "org", "users"):
            reply = metadata.handle(sandbox, request, parts)
            return reply or error(404, "INVALID_URL_PATTERN",
                                  "Please check if the URL trying to access is a correct one")
        module = parts[0]
        if module not in world.records:
            return error(400, "INVALID_MODULE", "The module name given seems to be invalid")
        reply = _records(sandbox, request, version, module, parts)
    return reply or error(404, "INVALID_URL_PATTERN",
                          "Please check if the URL trying to access is a correct one")


def _records(sandbox, request, version: int, module: str, parts: list[str]):
    world, method = sandbox.world, request.method
    events = module == "Events"
    if len(parts) == 1 and method == "GET":
        return _list(sandbox, request, version, module)
    if len(parts) == 1 and method == "PUT" and events:
        return _update(sandbox, request)
    if len(parts) == 1 and method == "DELETE":
        return _delete(world, (request.query.get("ids") or "").split(","), module)
    if parts[1:] == ["deleted"] and method == "GET":
        return _deleted(sandbox, request, module)
    if len(parts) == 2 and method == "GET":
        record = world.records[module].get(parts[1])
        if record is None:
            return error(400, "INVALID_DATA", "the id given seems to be invalid",
                         {"id": parts[1]})
        fields = _fields(request.query.get("fields"))
        return _json(200, {"data": [wire.render_record(record, fields, sandbox.crm_time_zone)]})
    if len(parts) == 2 and method == "DELETE":
        return _delete(world, [parts[1]], module)
    if len(parts) == 4 and parts[2:] == ["actions", "cancel"] and method == "POST" and events:
        return _cancel(sandbox, request, parts[1])
    return None


def _json(status: int, body):
    return Reply(status, body)


def _fields(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [f.strip() for f in text.split(",") if f.strip()]


def _paging(request) -> tuple[int, int, str | None] | object:
    try:
        per_page = int(request.query.get("per_page", 200))
        page = int(request.query.get("page", 1))
    except ValueError:
        return error(400, "INVALID_DATA", "invalid data", {"param_name": "page"})
    if not 1 <= per_page <= 200 or page < 1:
        return error(400, "INVALID_DATA", "invalid data",
                     {"param_name": "per_page" if not 1 <= per_page <= 200 else "page"})
    return page, per_page, request.query.get("page_token")


def _since(request):
    header = request.headers.get("If-Modified-Since")
    if not header:
        return None, None
    try:
        return wire.parse_if_modified_since(header), None
    except (ValueError, TypeError):
        return None, error(400, "INVALID_DATA", "invalid data",
                           {"param_name": "If-Modified-Since"})


def _window(sandbox, request, key: tuple, rows_for):
    """Shared paging of a list: page/per_page, page_token, the info object."""
    world = sandbox.world
    paging = _paging(request)
    if not isinstance(paging, tuple):
        return paging
    page, per_page, token = paging
    now = world.clock.now()
    if token:
        stored = world.page_tokens.get(token)
        if stored is None or stored[2] <= now or stored[0]["key"] != key:
            return error(400, "INVALID_DATA", "invalid data", {"param_name": "page_token"})
        offset = stored[1]
        page = stored[0]["page"]
    else:
        if page * per_page > MAX_OFFSET:
            return error(400, "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                         "You can only get the first 2000 records without using page_token param",
                         {"limit": MAX_OFFSET})
        offset = (page - 1) * per_page
    rows = rows_for()
    chunk = rows[offset:offset + per_page]
    if not chunk:
        return None
    more = offset + per_page < len(rows) and offset + per_page < MAX_TOKEN_RECORDS
    next_token, expiry = None, None
    if more:
        next_token = secrets.token_hex(20)
        expiry_at = now + dt.timedelta(hours=24)
        world.page_tokens[next_token] = ({"key": key, "page": page + 1}, offset + per_page,
                                         expiry_at)
        expiry = wire.crm_datetime(expiry_at, sandbox.crm_time_zone)
    info = {"per_page": per_page, "count": len(chunk), "page": page,
            "more_records": more, "next_page_token": next_token, "previous_page_token": None,
            "page_token_expiry": expiry, "call": False, "email": False}
    return chunk, info


def _list(sandbox, request, version: int, module: str):
    world = sandbox.world
    fields = _fields(request.query.get("fields"))
    if version >= 3 and not fields:
        return error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                     {"param_name": "fields"})
    if fields and len(fields) > 50:
        return error(400, "LIMIT_EXCEEDED", "Max field limit exceeded", {"limit": 50})
    sort_by = request.query.get("sort_by", "id")
    sort_order = request.query.get("sort_order", "desc")
    if sort_by not in SORTABLE or sort_order not in ("asc", "desc"):
        return error(400, "INVALID_DATA", "invalid data",
                     {"param_name": "sort_by" if sort_by not in SORTABLE else "sort_order"})
    since, bad = _since(request)
    if bad:
        return bad
    key = ("list", module, sort_by, sort_order, since, tuple(fields or ()))
    result = _window(sandbox, request, key,
                     lambda: world.modified_after(since, sort_by, sort_order == "desc", module))
    if result is None:
        return _json(204, None)
    if not isinstance(result, tuple):
        return result
    chunk, info = result
    info.update(sort_by=sort_by, sort_order=sort_order)
    data = [wire.render_record(r, fields, sandbox.crm_time_zone) for r in chunk]
    return _json(200, {"data": data, "info": info})


def _deleted(sandbox, request, module: str):
    world = sandbox.world
    kind = request.query.get("type", "all")
    if kind not in ("all", "recycle", "permanent"):
        return error(400, "INVALID_DATA", "invalid data", {"param_name": "type"})
    since, bad = _since(request)
    if bad:
        return bad

    def rows():
        items = [d for d in world.deleted_in[module] if world.passes_if_modified_since(d["deleted_time"], since)
                 and (kind == "all" or d["type"] == kind)]
        return sorted(items, key=lambda d: (d["deleted_time"], int(d["id"])), reverse=True)

    result = _window(sandbox, request, ("deleted", module, kind, since), rows)
    if result is None:
        return _json(204, None)
    if not isinstance(result, tuple):
        return result
    chunk, info = result
    data = [dict(d, deleted_time=wire.crm_datetime(d["deleted_time"], sandbox.crm_time_zone))
            for d in chunk]
    return _json(200, {"data": data, "info": info})


def _update(sandbox, request):
    world = sandbox.world
    body = request.json
    if not isinstance(body, dict) or not isinstance(body.get("data"), list) or not body["data"]:
        return error(400, "INVALID_DATA", "body", {"expected_data_type": "jsonobject"})
    results, ok = [], 0
    for index, item in enumerate(body["data"]):
        meeting_id = str(item.get("id", "")) if isinstance(item, dict) else ""
        if meeting_id not in world.meetings:
            results.append({"code": "INVALID_DATA", "details": {"id": meeting_id},
                            "message": "the id given seems to be invalid", "status": "error"})
            continue
        values, problem = {}, None
        for key, value in item.items():
            if key == "id":
                continue
            if key in ("Created_Time", "Modified_Time", "Created_By", "Modified_By"):
                problem = {"code": "INVALID_DATA", "details": {"api_name": key, "json_path": f"$.data[{index}].{key}"},
                           "message": "invalid data", "status": "error"}
                break
            if key in ("Start_DateTime", "End_DateTime"):
                try:
                    value = wire.parse_crm_datetime(value)
                except (ValueError, TypeError):
                    problem = {"code": "INVALID_DATA",
                               "details": {"expected_data_type": "datetime", "api_name": key,
                                           "json_path": f"$.data[{index}].{key}"},
                               "message": "invalid data", "status": "error"}
                    break
            values[key] = value
        if problem:
            results.append(problem)
            continue
        record = world.touch(meeting_id, **values)
        ok += 1
        tz = sandbox.crm_time_zone
        results.append({"code": "SUCCESS", "details": {
            "Modified_Time": wire.crm_datetime(record["Modified_Time"], tz),
            "Modified_By": {"name": record["Modified_By"]["name"], "id": record["Modified_By"]["id"]},
            "Created_Time": wire.crm_datetime(record["Created_Time"], tz), "id": meeting_id,
            "Created_By": {"name": record["Created_By"]["name"], "id": record["Created_By"]["id"]}},
            "message": "record updated", "status": "success"})
    status = 200 if ok == len(results) else 202 if ok else 400
    return _json(status, {"data": results})


def _cancel(sandbox, request, meeting_id: str):
    """Cancel Meeting, as Zoho's "meeting-cancel" page and cancel_meetings.json describe it:
    per-record replies inside ``data``; unknown id → INVALID_DATA (details.id); a body without
    ``send_cancelling_mail`` → MANDATORY_NOT_FOUND; already cancelled or already over →
    NOT_ALLOWED. Not enforced: "only if attendees have been invited" (integration-made
    meetings here have no Participants, and a sandbox that refuses every cancel tests nothing).
    A request with no body at all is accepted, as Zoho's v2.1 sample request sends none."""
    world = sandbox.world

    def refused(code: str, message: str, details: dict):
        return _json(400, {"data": [{"code": code, "details": details, "message": message,
                                     "status": "error"}]})

    record = world.meetings.get(meeting_id)
    if record is None:
        return refused("INVALID_DATA", "the id given seems to be invalid", {"id": meeting_id})
    body = request.json
    if body is not None:
        items = body.get("data") if isinstance(body, dict) else None
        if not (isinstance(items, list) and items and isinstance(items[0], dict)
                and "send_cancelling_mail" in items[0]):
            return refused("MANDATORY_NOT_FOUND", "required field not found",
                           {"api_name": "send_cancelling_mail",
                            "json_path": "$.data[0].send_cancelling_mail"})
    if record.get("$event_cancelled"):
        return refused("NOT_ALLOWED", "The event is already cancelled", {"id": meeting_id})
    if record["End_DateTime"] <= world.clock.now():
        return refused("NOT_ALLOWED", "You cannot cancel the meeting after the meeting end time",
                       {"id": meeting_id})
    world.cancel_meeting(meeting_id)
    return _json(200, {"data": [{"code": "SUCCESS", "details": {"id": meeting_id},
                                 "message": "The event is successfully cancelled",
                                 "status": "success"}]})


def _delete(world, ids: list[str], module: str):
    results = []
    for record_id in [i for i in ids if i]:
        if record_id in world.records[module]:
            world.delete_record(module, record_id)
            results.append({"code": "SUCCESS", "details": {"id": record_id},
                            "message": "record deleted", "status": "success"})
        else:
            results.append({"code": "INVALID_DATA", "details": {"id": record_id},
                            "message": "the id given seems to be invalid", "status": "error"})
    if not results:
        return error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                     {"param_name": "ids"})
    ok = sum(r["status"] == "success" for r in results)
    return _json(200 if ok == len(results) else 400, {"data": results})
