"""OAuth scopes: which scope lets a token make which call, and how a call outside them is refused.

Scope names as Zoho documents them (``service.scope_name.OPERATION``, compared without regard
to case: Zoho's own pages write ``ZohoCRM.Modules.Events.ALL`` and ``ZohoCRM.modules.events.ALL``
for the same scope). A call is allowed when the token holds any scope of its "any of" set:

=======================================  =====================================================
call                                     any of
=======================================  =====================================================
GET ``/{Module}``, ``/{Module}/{id}``,   ``ZohoCRM.modules.ALL`` · ``ZohoCRM.modules.READ`` ·
``/{Module}/deleted``                    ``ZohoCRM.modules.{module}.ALL`` / ``.READ``
PUT ``/{Module}``                        … ``.UPDATE`` (or ``.WRITE``) in place of ``.READ``
DELETE ``/{Module}``                     … ``.DELETE`` (or ``.WRITE``)
POST ``/Events/{id}/actions/cancel``     ``ZohoCRM.modules.ALL`` · ``ZohoCRM.modules.events.ALL``
                                         / ``.UPDATE``
GET ``/settings/fields``                 ``ZohoCRM.settings.ALL`` · ``ZohoCRM.settings.fields.ALL``
                                         / ``.READ``
GET ``/settings/modules[/{Module}]``     ``ZohoCRM.settings.ALL`` · ``ZohoCRM.settings.modules.ALL``
                                         / ``.READ``
GET ``/org``                             ``ZohoCRM.org.ALL`` / ``.READ``
GET ``/users``                           ``ZohoCRM.users.ALL`` / ``.READ``
Bookings ``/bookings/v1/json/*``         ``zohobookings.data.CREATE``
=======================================  =====================================================

Sources: the "Scope" section of each CRM page (get-records, get-deleted-records: ALL or
``{module}.READ``; meeting-cancel: ALL or ``Events.UPDATE``; modules-api and the fields pages:
``settings.ALL`` or ``settings.{modules|fields}.READ``; get-org-data: ``org.READ``; get-users:
``users.READ``), the scope list in Zoho's OpenAPI ``common.json`` (which lists
``ZohoCRM.modules.READ``, an operation on every module), the "Select API Scopes" page (``WRITE``
is an alias for CREATE, UPDATE and DELETE) and the Bookings OAuth page (only
``zohobookings.data.CREATE`` is documented; it covers reads too). The module part of a scope is
the module's API name in lower case (``events``, ``contacts``, ``leads``); a module the token has
no scope for is refused before the sandbox looks at whether the module exists.

Refusals: CRM answers HTTP 401 ``OAUTH_SCOPE_MISMATCH`` with all four error keys (the pages'
"Possible Errors"). Bookings does not document its answer; the sandbox's default is HTTP 200
``{"response": {"status": "failure", "errormessage": "invalid oauth scope to access this URL"}}``
(the failure shape public Bookings clients parse), ``"html"`` selects an HTML 401 page instead.
"""

from __future__ import annotations

from .messages import Reply

#: What the ready-made credentials (``Sandbox.credentials``) carry: everything the sandbox serves.
FULL = frozenset({"ZohoCRM.modules.ALL", "ZohoCRM.settings.ALL", "ZohoCRM.org.READ",
                  "ZohoCRM.users.READ", "zohobookings.data.CREATE"})
BOOKINGS = "zohobookings.data.create"
MESSAGE = "invalid oauth scope to access this URL"
REFUSAL_SHAPES = ("json", "html")
_OPERATION = {"GET": "READ", "PUT": "UPDATE", "POST": "CREATE", "DELETE": "DELETE"}
_HTML_401 = ("<html><head><title>401 Unauthorized</title></head><body><h1>Unauthorized</h1>"
             f"<p>{MESSAGE}</p></body></html>")


def parse(scopes) -> frozenset[str]:
    """``"a,b"`` (as the API console takes them), ``"a b"`` or a list → a set of names."""
    if isinstance(scopes, str):
        scopes = scopes.replace(",", " ").split()
    names = frozenset(str(s).strip() for s in scopes if str(s).strip())
    if not names:
        raise ValueError("at least one scope is needed, e.g. ZohoCRM.modules.events.READ")
    return names


def crm_need(method: str, parts: list[str]) -> tuple[tuple[str, ...], str]:
    """The scope path and operation a CRM call needs (see the table above)."""
    if parts[0] == "settings" and len(parts) > 1:
        return ("settings", parts[1].lower()), "READ"
    if parts[0] in ("org", "users"):
        return (parts[0],), "READ"
    module = parts[0].lower()
    if parts[2:4] == ["actions", "cancel"]:
        return ("modules", module), "UPDATE"
    return ("modules", module), _OPERATION.get(method, "READ")


def grants(granted: frozenset[str], path: tuple[str, ...], operation: str) -> bool:
    held = {name.lower() for name in granted}
    wanted = {"zohocrm." + ".".join(path[:i]) + ".all" for i in range(1, len(path) + 1)}
    operations = {operation.lower()}
    if operation in ("CREATE", "UPDATE", "DELETE"):
        operations.add("write")
    for op in operations:
        wanted.add("zohocrm." + ".".join(path) + "." + op)
        if path[0] == "modules":
            wanted.add("zohocrm.modules." + op)
    return bool(held & wanted)


def crm_refusal():
    return Reply(401, {"code": "OAUTH_SCOPE_MISMATCH", "details": {}, "message": MESSAGE,
                       "status": "error"})


def bookings_refusal(sandbox, request):
    """The refusal for a valid token without the Bookings scope, or None (an unknown token is
    left to the Bookings handler's own 401)."""
    world = sandbox.world
    with world.lock:
        if not world.token_valid(request.token):
            return None
        if BOOKINGS in {name.lower() for name in world.scopes_of(request.token)}:
            return None
    if sandbox.bookings_scope_refusal == "html":
        return Reply(401, _HTML_401, content_type="text/html;charset=UTF-8")
    return Reply(200, {"response": {"status": "failure", "errormessage": MESSAGE}})
