"""bookings-sync: follow Zoho CRM meeting changes back into Zoho Bookings.

Rooms: ``config`` · ``zoho`` (auth, http, crm, bookings) · ``store`` · ``engine`` (planner +
executor) · ``cli`` / ``service`` · ``sandbox``. The daemon path never imports the sandbox.
"""

__version__ = "0.1.0"
