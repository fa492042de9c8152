"""Shared pytest fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture
def sandbox():
    """A started Zoho sandbox on an ephemeral 127.0.0.1 port (real clock), stopped afterwards."""
    from bookings_sync.sandbox import Sandbox

    with Sandbox(token_ttl=3600) as sb:
        yield sb
