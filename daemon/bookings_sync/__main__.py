"""``python -m bookings_sync`` — the same entry point as the ``bookings-sync`` console script."""

from bookings_sync.cli import main

raise SystemExit(main())
