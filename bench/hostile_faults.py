"""``make hostile``, class "faults": every fault kind of ``sandbox/faults.py`` on every endpoint it
applies to, once (``count=1``) and persistently (until cleared).

The scenario (:func:`fault_scenario`): four booked meetings, a baseline run, then — as the fault
is armed — one meeting moved in CRM (a reschedule: ``getappointment`` then
``rescheduleappointment``) and one deleted (a cancel: the deleted-records list, then
``getappointment`` and ``updateappointment``). The token endpoint is reached by expiring the
access tokens first; the Events ``PUT`` by ``on_refused = "revert"`` and a move into a slot
Bookings refuses. The lying-page kinds need pages: their cases touch 450 meetings (and delete
250) so that lists really page. What "handled cleanly" means for the faulted run:

- exit 0 or 3 for a fault that lasts one request (absorbed by the client's re-sends, or the
  action waits for the next cycle); 3 for one that lasts; 1 where Bookings refuses (``echo`` /
  ``refuse`` on a Bookings call: the refusal is recorded with its reason) or where a page holds
  items that are not records (``junk_items``); 3 for any redirect (never followed); 1 or 3 on
  the revert ``PUT``, whose cycle has a refusal by design; 0 or 3 for ``token_repeat`` (a walk
  that never follows the repeated token is not hurt by it);
- an exit 3 says why in one line; redirects say "not followed"; ``junk_items`` name each item;
- only refusals are recorded as failures; then the harness's checks (no traceback, no secret,
  never the wrong booking or twice, the state loads, a clean run converges).
"""

from __future__ import annotations

import time

from hostile_harness import Case, Harness

# Kind label -> (kind, params). ``{client_secret}`` & co. become what the request presented.
ODD_TEXT = ("\x1b[2J\x07slot\r\ntaken for {client_secret} {refresh_token} {access_token} "
            "\u00e9\u4e2d")
KINDS = {
    "429": ("429", {}),
    "500": ("500", {}),
    "stall": ("stall", {"stall_seconds": 3}),
    "drop": ("drop", {}),
    "redirect301": ("redirect", {"status": 301}),
    "redirect302": ("redirect", {"status": 302}),
    "redirect307": ("redirect", {"status": 307}),
    "redirect308": ("redirect", {"status": 308}),
    "trickle": ("trickle", {"interval": 0.2}),
    "oversize": ("oversize", {"size": 200_000_000, "content_length": True}),
    "oversize-chunked": ("oversize", {"size": 200_000_000, "content_length": False}),
    "html200": ("html", {"status": 200}),
    "html502": ("html", {"status": 502}),
    "text": ("text", {}),
    "truncated": ("truncated", {}),
    "no_envelope": ("no_envelope", {}),
    "empty": ("empty", {}),
    "echo": ("echo", {}),
    "refuse-odd-text": ("refuse", {"message": ODD_TEXT}),
}
LIST_KINDS = ("page_repeat", "token_repeat", "page_short", "page_endless", "junk_items")
# Endpoint -> the path the fault is armed on.
ENDPOINTS = {
    "token": "/oauth/v2/token",
    "events-list": "/crm/v8/Events",
    "deleted-list": "/crm/v8/Events/deleted",
    "getappointment": "getappointment",
    "rescheduleappointment": "rescheduleappointment",
    "updateappointment": "updateappointment",
    "events-put": "/crm/v8/Events",
}
BOOKINGS = ("getappointment", "rescheduleappointment", "updateappointment")
WHEN = {"once": 1, "persist": None}
SLOW = {"429", "500", "stall", "drop", "html502"}   # GETs re-sent 4 times with backoff


def expected_exits(kind: str, endpoint: str, when: str) -> set[int]:
    if endpoint == "events-put":
        return {1, 3}
    if kind in ("echo", "refuse") and endpoint in BOOKINGS:
        return {1}
    if kind == "redirect":
        return {3}
    if kind == "junk_items":
        return {1}
    if kind == "token_repeat":
        return {0, 3}    # harmless to a walk that never follows a page token twice
    return {0, 3} if when == "once" else {3}


def fault_scenario(label: str, endpoint: str, when: str, busy: bool = False):
    kind, params = KINDS.get(label, (label, {}))
    path, count = ENDPOINTS[endpoint], WHEN[when]

    def scenario(h: Harness) -> None:
        h.sandbox()
        revert = endpoint == "events-put"
        h.book("M1", 3, staff="s1")
        h.book("M2", 4, staff="s2")
        h.book("M3", 5, staff="s3")
        if revert:
            h.book("X", 6, staff="s1")
        sync = ['on_refused = "revert"\non_delete = "ignore"' if revert else "",
                "max_cancel_fraction = 1" if busy else ""]
        if busy:
            h.act("seed", 450)
        h.config(sync="\n".join(sync))
        h.run_once(0, label="baseline")
        h.mark_baseline()
        if busy:
            touch_many(h, delete=endpoint == "deleted-list")
        h.act("crm_move", h.meeting("M1"), h.at(6) if revert else h.at(7, 11))
        if not revert:
            h.act("crm_delete", h.meeting("M2"))
            h.expect_closed.add(h.booking("M2"))
        if endpoint == "token":
            h.act("expire_tokens")
        if revert:
            arm_after_list(h, lambda: h.act("inject", path, kind, count, **params))
        else:
            h.act("inject", path, kind, count, **params)
        run = h.run_once(expected_exits(kind, endpoint, when), label="faulted run")
        if kind == "redirect" and run.code == 3:
            h.expect("not followed" in run.stderr, "line", "a redirect without a line saying "
                                                           "it was not followed")
        if kind == "junk_items":
            h.expect(len(run.event("crm.bad_record")) >= 4, "line",
                     "junk items in a page without a crm.bad_record line each")
        refusals = {h.meeting("M1")} if revert else set()
        if kind in ("echo", "refuse") and endpoint in BOOKINGS:
            refusals = {h.meeting("M1"), h.meeting("M2")}
        h.status(allowed_failures=refusals)
        if kind in ("echo", "refuse"):
            h.cli("--config", str(h.config_path), "check", label="check (fault armed)")
        if kind == "stall":
            h.step("wait 3 s: the stalled request completes on the server")
            time.sleep(3)
        h.clean_phase(before=(lambda: free_slot(h)) if revert else None)

    return scenario


def touch_many(h: Harness, delete: bool) -> None:
    """Every seeded meeting edited in the same second or two (a field the daemon ignores), so
    the next list really pages; 250 of them deleted for the deleted-records list."""
    sb = h.sb
    seeded = [m for m in list(sb.world.meetings) if m not in {p[0] for p in h.roles.values()}]
    h.step(f"edit Description of {len(seeded)} seeded meetings"
           + (", delete 250 of them" if delete else ""))
    for meeting_id in seeded:
        sb.crm_edit(meeting_id, Description="touched")
    if delete:
        for meeting_id in seeded[:250]:
            booking_id = sb.world.meetings[meeting_id][sb.world.booking_id_field]
            sb.crm_delete(meeting_id)
            h.expect_closed.add(booking_id)


def arm_after_list(h: Harness, arm) -> None:
    """Arm the fault once the Events list has been read, behind a harmless one-request stall
    (0 s) on ``Events/{id}``: the revert's re-read passes, its ``PUT Events`` takes the fault."""
    def on_page(endpoint, query):
        if endpoint == "crm.list":
            h.sb.on_page = None
            h.act("inject", "/crm/v8/Events/", "stall", 1, stall_seconds=0)
            arm()
    h.step("after the Events list page:")
    h.sb.on_page = on_page


def free_slot(h: Harness) -> None:
    """The refused move's slot freed in Bookings, so ``retry`` can land it."""
    h.act("bookings_cancel", h.booking("X"))
    h.driver_closed.add(h.booking("X"))


def cases() -> list[Case]:
    out = []
    for label, (kind, _) in KINDS.items():
        for endpoint in ENDPOINTS:
            for when in WHEN:
                out.append(Case("faults: " + _family(kind), f"faults/{label}/{endpoint}/{when}",
                                fault_scenario(label, endpoint, when),
                                slow=(label in SLOW and when == "persist") or kind == "stall"))
    for kind in LIST_KINDS:
        for endpoint in ("events-list", "deleted-list"):
            for when in WHEN:
                out.append(Case("faults: lying pages", f"faults/{kind}/{endpoint}/{when}",
                                fault_scenario(kind, endpoint, when, busy=True)))
    return out


def _family(kind: str) -> str:
    if kind in ("429", "500", "stall", "drop", "trickle", "oversize"):
        return "transport"
    if kind == "redirect":
        return "redirects"
    if kind in ("echo", "refuse"):
        return "echo / refuse"
    return "bodies"
