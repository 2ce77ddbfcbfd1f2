"""Fixtures for the mDNS tests: a fake backend, the callbacks seen, the drops counted as the
daemon counts them, a running service."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from p2pcc.core.reports import Reports
from p2pcc.daemon.mdns.service import MdnsService
from tests.daemon.mdns.fake_mdns import IDENTITY, FakeBackend, Seen


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def reports() -> Reports:
    return Reports()


@pytest.fixture
async def service(backend: FakeBackend, seen: Seen, reports: Reports) -> AsyncIterator[MdnsService]:
    service = MdnsService(backend, IDENTITY, seen.listeners(), on_drop=reports.count_mdns_drop)
    async with trio.open_nursery() as nursery:
        started = await nursery.start(service.run)
        yield started
        nursery.cancel_scope.cancel()
