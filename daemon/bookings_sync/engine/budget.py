"""Bookings' daily call quota, spent like money.

Zoho allows each user 250 (Free), 1,000 (Basic) or 3,000 (Premium) Bookings API calls a day,
counted "between 00:00 and 23:59 hours in the respective time zone" — the Bookings org's
(docs/zoho-bookings.md, "Limits"). At two calls a reschedule that is 125 / 500 / 1,500
reschedules a day, and a burst could spend a Basic day in minutes. So:

- every Bookings call the daemon makes is counted and kept in the store's meta (a ``--run-once``
  timer counts across runs; a kill loses at most the calls of one uncommitted batch);
- an action starts only while what is left covers its worst case, :data:`CALLS_PER_ACTION`
  (a read, then a write — one call when Bookings already holds the change), soonest
  appointment first; the rest waits for the day to roll over, and ``status`` says so;
- a warning line once a day when 80 % is spent;
- when Zoho answers that the limit is reached anyway (another client of the same user spent
  it), the day's budget is read as exhausted until the reset — not retried every cycle.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from bookings_sync.zoho.timefmt import to_zone, zone

CALLS_PER_ACTION = 2
WARN_SHARE = 0.8


@dataclasses.dataclass(frozen=True)
class BudgetSettings:
    daily_limit: int = 250
    time_zone: str = "UTC"        # the Bookings org's: where Zoho's day starts


@dataclasses.dataclass
class Budget:
    """One day's Bookings calls, as counted in the org's time zone."""
    settings: BudgetSettings
    day: dt.date
    used: int = 0
    warned: bool = False

    @classmethod
    def load(cls, meta: dict, settings: BudgetSettings, now: dt.datetime) -> "Budget":
        """Today's budget from the store's meta (a new day starts from nothing). A recorded day
        later than ``now``'s is still the current one: the daemon counts by Zoho's clock, and a
        reader's (``status``) may run behind it."""
        today = zoho_day(now, settings.time_zone)
        recorded = meta.get("bookings_day")
        if recorded is None or recorded < today.isoformat():
            return cls(settings, today)
        return cls(settings, dt.date.fromisoformat(recorded),
                   used=int(meta.get("bookings_calls", 0)),
                   warned=bool(meta.get("bookings_warned")))

    @property
    def limit(self) -> int:
        return self.settings.daily_limit

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used)

    def affordable(self) -> int:
        """How many actions the calls left can start (each may cost a read and a write)."""
        return self.left // CALLS_PER_ACTION

    def spend(self, calls: int) -> None:
        self.used += calls

    def exhaust(self) -> None:
        """Zoho said the day's limit is reached: nothing more until the reset."""
        self.used = max(self.used, self.limit)

    def warn_now(self) -> bool:
        """True once a day, when 80 % is spent."""
        if self.warned or self.used < WARN_SHARE * self.limit:
            return False
        self.warned = True
        return True

    def resets_at(self) -> dt.datetime:
        """The next midnight in the org's time zone, as an aware UTC instant."""
        midnight = dt.datetime.combine(self.day + dt.timedelta(days=1), dt.time())
        return zone(self.settings.time_zone).localize(midnight, is_dst=False) \
            .astimezone(dt.timezone.utc)

    def to_meta(self) -> dict:
        return {"bookings_day": self.day.isoformat(), "bookings_calls": self.used,
                "bookings_warned": self.warned or None}

    def describe(self) -> str:
        """``412 of 1,000, resets 00:00 Europe/London`` (for ``status``)."""
        return (f"{self.used:,} of {self.limit:,}, resets 00:00 {self.settings.time_zone}")


def zoho_day(now: dt.datetime, time_zone: str) -> dt.date:
    return to_zone(now, time_zone).date()
