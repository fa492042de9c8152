"""A local Zoho: Accounts (OAuth), CRM and Bookings on one base URL, faithful to the wire format.

The embedded default for the demo and the peer of every integration test, over real HTTP on
127.0.0.1. Its fidelity is a feature — when it and Zoho's documents disagree, the sandbox is
wrong (tests check it with Zoho's own SDK and OpenAPI files). It follows shared/zoho-api.md.

    with Sandbox(crm_time_zone="Europe/Berlin") as sb:
        meeting_id, booking_id = sb.book(start=..., time_zone="Asia/Kolkata")
        sb.crm_move(meeting_id, new_start)        # as a CRM user drags the meeting
        sb.calls["bookings.rescheduleappointment"]

The control surface (this class, and ``POST /_sandbox/<verb>`` with a JSON body for drivers in
other processes, see ``control.py``) seeds data, edits as CRM or Bookings users would, injects
faults, expires tokens, issues Self Client grant codes, counts calls per endpoint and keeps the
request log (credentials masked: the Authorization header keeps only its scheme), and plays a
hostile Zoho on demand (``faults.py``: redirects, lying pages, trickled and oversized replies,
HTML where JSON belongs, echoed secrets; ``Sandbox.crm_raw`` / ``crm_clone`` for hostile
records). The daemon never imports this package, and this package never imports the daemon's
Zoho client: one shared bug must not cancel out. Every Accounts and CRM fact it follows, with its
source: docs/zoho-crm-and-accounts.md.

Layout: ``app`` (the :class:`Sandbox` object; its Bookings half in ``bookings_surface``) ·
``clock`` (real or frozen time) · ``world`` (data, tokens; its Bookings half — appointments and
the Bookings→CRM integration — in ``appointments``, the catalog of workspaces, services, staff
and business hours in ``catalog``) · ``availability`` (what a booking is checked against, free
slots) · ``wire`` (Zoho's date formats, record/appointment/catalog rendering) · ``fields`` /
``metadata`` (CRM field, module, org and user metadata) · ``scopes`` (which scope allows which
call) · ``messages`` (the request/reply types handlers share) · ``accounts`` / ``crm`` /
``bookings`` (+ ``bookings_catalog``) (the three APIs) · ``server`` (HTTP, log) · ``faults`` (a
hostile Zoho: fault kinds, parameters, replies) · ``catcher`` (a second listener that records
what reaches it raw, where redirects point) · ``control`` (``/_sandbox``) · ``cli``
(``bookings-sync sandbox``). Arrows point one way: ``app`` → ``server`` → ``faults`` → handlers →
``messages`` / ``world`` / ``wire``. Every wire fact and choice, with its source:
docs/zoho-bookings.md and docs/zoho-crm-and-accounts.md.

Where Zoho's documents are silent, the sandbox chooses (and says so here):
* CRM without an Authorization header → 401 AUTHENTICATION_FAILURE; unknown/expired token →
  401 INVALID_TOKEN. Bookings without a valid token → 401 with an HTML page.
* A cancelled meeting has ``$event_cancelled: true`` (Zoho's documented marker) and the status
  field (default ``Meeting_Status``) set to "Cancelled"; Bookings "completed"/"noshow" set it to
  "Completed"/"No Show" through the integration.
* Bookings over its daily limit → HTTP 200 ``response.status = "failure"`` + ``errormessage``.
* API-created bookings get an integration meeting (switchable, optionally delayed); Bookings
  business hours default to Mon–Fri 09:00–18:00 in the workspace zone.
* Unknown record id on GET ``Events/{id}`` → 400 INVALID_DATA (details.id).
* The 11th access token within 10 minutes → HTTP 400 ``{"error": "Access Denied", ...}``.
"""

from .app import Sandbox
from .clock import FrozenClock, RealClock, wait_for

__all__ = ["Sandbox", "FrozenClock", "RealClock", "wait_for"]
