"""Clients for the three Zoho services the daemon talks to: Accounts (OAuth), CRM and Bookings.

``auth`` mints and caches access tokens, ``http`` owns the one ``requests.Session`` with its retry
policy and turns Zoho's error shapes into the exceptions of ``errors``; ``crm`` and ``bookings``
speak the two APIs on top of it. Nothing here knows about snapshots or plans.
"""
