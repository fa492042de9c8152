"""bookings-sync: follow Zoho CRM meeting changes back into Zoho Bookings.

Rooms, each importing only from the rooms below it:

- ``cli`` (the command line) · ``service`` (the daemon: scheduler, signals, sd_notify) ·
  ``ops`` (``status``, ``retry``) · ``checks`` (``check``) · ``demo``
- ``runtime`` — wires a configuration into live objects
- ``config`` (TOML, validated) · ``logs`` (structlog set-up, redaction)
- ``engine`` — ``model`` (the vocabulary) · ``meetings`` (CRM JSON → records) · ``planner``
  (pure: snapshot + records → plan) · ``executor`` (acts) · ``retry`` · ``cycle``
- ``store`` (the snapshot, TinyDB) · ``mailbox`` (retry requests beside it) ·
  ``zoho`` (``auth``, ``http``, ``crm``, ``bookings``, ``connection``) · ``exitcodes``

``sandbox`` (a local Zoho) stands apart: the daemon path never imports it, and it never imports
the daemon's Zoho clients.
"""

__version__ = "0.1.0"
