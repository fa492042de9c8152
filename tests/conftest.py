"""Shared pytest fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture
def sandbox():
    """A started Zoho sandbox on an ephemeral 127.0.0.1 port (real clock), stopped afterwards."""
    from bookings_sync.sandbox import Sandbox

    with Sandbox(token_ttl=3600) as sb:
        yield sb


@pytest.fixture
def clock():
    """The sandbox clock of the wire-format tests, frozen at ``e2e.FROZEN_NOW``."""
    from bookings_sync.sandbox import FrozenClock
    from e2e import FROZEN_NOW

    return FrozenClock(FROZEN_NOW)


@pytest.fixture
def frozen_sb(clock):
    """A sandbox on the frozen clock, its CRM user in Europe/Berlin."""
    from bookings_sync.sandbox import Sandbox

    with Sandbox(crm_time_zone="Europe/Berlin", clock=clock) as sb:
        yield sb
