"""Fixtures for the mDNS tests: a fake backend, the callbacks seen, a running service."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from p2pcc.daemon.mdns.service import MdnsService
from tests.daemon.mdns.fake_mdns import IDENTITY, FakeBackend, Seen


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
async def service(backend: FakeBackend, seen: Seen) -> AsyncIterator[MdnsService]:
    async with trio.open_nursery() as nursery:
        started = await nursery.start(MdnsService(backend, IDENTITY, seen.listeners()).run)
        yield started
        nursery.cancel_scope.cancel()
