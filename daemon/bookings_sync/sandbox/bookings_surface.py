"""The Bookings half of the :class:`~.app.Sandbox` control surface, which ``Sandbox`` extends:
the catalog (workspaces, services, staff, business hours), the integration's switches, the wire
switches, and the per-day call counter.

The counter follows Zoho's note on every Bookings API page: "API counts are calculated between
00:00 and 23:59 hours in the respective time zones", authorization requests excluded. The day
is the sandbox clock's date in the org's (default workspace's) time zone. Every authenticated
Bookings call is counted, whether or not a limit is set, so tests can assert budgets; a call
refused for the limit is not counted (Zoho is silent; the sandbox's choice).
"""

from __future__ import annotations

import datetime as dt

import pytz


class BookingsSurface:
    """Needs from its host: ``world``, ``clock`` and ``bookings_daily_limit``."""

    _bookings_day: tuple[dt.date, int] | None = None

    # -- catalog -------------------------------------------------------------------------------

    def add_workspace(self, workspace_id: str, name: str, **options) -> dict:
        """options: time_zone, hours, currency, time_format ("24h" | "12h"), slot_minutes."""
        with self.world.lock:
            return dict(self.world.catalog.add_workspace(workspace_id, name, **options))

    def add_service(self, service_id: str, name: str, duration_minutes: int, **options) -> dict:
        """options: buffer_minutes, service_type, staff_ids, let_customer_select_staff,
        workspace_id, cost."""
        with self.world.lock:
            self.world.catalog.add_service(service_id, name, duration_minutes, **options)
            return self.world.catalog.snapshot()["services"][str(service_id)]

    def add_staff(self, staff_id: str, name: str, email: str, **options) -> dict:
        """options: service_ids, hours (overriding the workspace's), designation."""
        with self.world.lock:
            return dict(self.world.catalog.add_staff(staff_id, name, email, **options))

    def set_business_hours(self, hours: dict | None, staff_id: str | None = None,
                           workspace_id: str = "ws-1") -> None:
        """``{"mon": ["09:00", "18:00"], ...}`` (missing or None days are closed), wall time
        in the workspace's zone; with ``staff_id`` it overrides that staff member's hours
        (``None`` restores the workspace's)."""
        with self.world.lock:
            self.world.catalog.set_hours(hours, staff_id=staff_id, workspace_id=workspace_id)

    def catalog(self) -> dict:
        with self.world.lock:
            return self.world.catalog.snapshot()

    # -- switches ------------------------------------------------------------------------------

    def set_integration(self, *, meetings_for_api_bookings: bool | None = None,
                        delay_seconds: float | None = None) -> None:
        """Whether ``POST appointment`` bookings get a CRM meeting, and after how many
        sandbox-clock seconds integration meetings appear (applies to bookings made after)."""
        with self.world.lock:
            if meetings_for_api_bookings is not None:
                self.world.meetings_for_api_bookings = bool(meetings_for_api_bookings)
            if delay_seconds is not None:
                if float(delay_seconds) < 0:
                    raise ValueError("delay_seconds must not be negative")
                self.world.integration_delay = float(delay_seconds)

    def set_bookings_wire(self, *, fetch_list_key: str | None = None,
                          fetch_needs_data_field: bool | None = None,
                          phone_required: bool | None = None) -> None:
        """Where fetchappointment puts its list ("response" | "data"), whether it insists on
        the ``data`` JSON field, whether a booking needs a customer phone number."""
        with self.world.lock:
            if fetch_list_key is not None:
                if fetch_list_key not in ("response", "data"):
                    raise ValueError(f"fetch_list_key {fetch_list_key!r}: response | data")
                self.world.fetch_list_key = fetch_list_key
            if fetch_needs_data_field is not None:
                self.world.fetch_needs_data_field = bool(fetch_needs_data_field)
            if phone_required is not None:
                self.world.phone_required = bool(phone_required)

    # -- the per-day call limit ------------------------------------------------------------

    def bookings_budget(self) -> dict:
        """{"day": "yyyy-mm-dd" in the org's zone, "used", "limit", "left", "time_zone"}."""
        with self.world.lock:
            today, used = self._used_today()
            limit = self.bookings_daily_limit
            return {"day": today.isoformat(), "used": used, "limit": limit,
                    "left": None if limit is None else max(limit - used, 0),
                    "time_zone": self.world.workspace_time_zone}

    def _used_today(self) -> tuple[dt.date, int]:
        zone = pytz.timezone(self.world.workspace_time_zone)
        today = self.clock.now().astimezone(zone).date()
        day, used = self._bookings_day or (today, 0)
        return today, (used if day == today else 0)

    def _bookings_budget(self) -> bool:
        """Count one call; False (and not counted) when the day's limit is used up."""
        today, used = self._used_today()
        if self.bookings_daily_limit is not None and used >= self.bookings_daily_limit:
            self._bookings_day = (today, used)
            return False
        self._bookings_day = (today, used + 1)
        return True
