"""Shared pytest fixtures: sandboxes (started on an ephemeral 127.0.0.1 port, stopped after).

``--if-modified-since=inclusive`` (or ``$SANDBOX_IF_MODIFIED_SINCE``) runs every sandbox with
CRM's ``If-Modified-Since`` keeping records modified *at* the instant, not only after it — Zoho
documents neither; Airbyte's client assumes inclusive. ``make test-inclusive`` runs the daemon's
end-to-end tests that way; ``make test`` the strict way.
"""

from __future__ import annotations

import os

import pytest

from bookings_sync.sandbox import FrozenClock, Sandbox
from e2e import FROZEN_NOW


def pytest_addoption(parser):
    parser.addoption("--if-modified-since", choices=("strict", "inclusive"),
                     default=os.environ.get("SANDBOX_IF_MODIFIED_SINCE", "strict"),
                     help="the sandbox's If-Modified-Since semantics for every test")


@pytest.fixture
def make_sandbox(request):
    """``make_sandbox(**kwargs)`` → a started :class:`Sandbox`; all are stopped afterwards."""
    started: list[Sandbox] = []
    mode = request.config.getoption("--if-modified-since")

    def make(**kwargs) -> Sandbox:
        kwargs.setdefault("if_modified_since", mode)
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
