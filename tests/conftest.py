"""Shared pytest fixtures: sandboxes (started on an ephemeral 127.0.0.1 port, stopped after)."""

from __future__ import annotations

import pytest

from bookings_sync.sandbox import FrozenClock, Sandbox
from e2e import FROZEN_NOW


@pytest.fixture
def make_sandbox():
    """``make_sandbox(**kwargs)`` → a started :class:`Sandbox`; all are stopped afterwards."""
    started: list[Sandbox] = []

    def make(**kwargs) -> Sandbox:
        sandbox = Sandbox(**kwargs).start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sb(make_sandbox):
    """A sandbox on the real clock, its CRM user in UTC."""
    return make_sandbox()


@pytest.fixture
def clock():
    """The sandbox clock of the wire-format tests, frozen at ``e2e.FROZEN_NOW``."""
    return FrozenClock(FROZEN_NOW)


@pytest.fixture
def frozen_sb(make_sandbox, clock):
    """A sandbox on the frozen clock, its CRM user in Europe/Berlin."""
    return make_sandbox(crm_time_zone="Europe/Berlin", clock=clock)
