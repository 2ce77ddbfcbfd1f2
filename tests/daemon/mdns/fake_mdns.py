"""A fake mDNS backend and the records tests announce through it.

`FakeBackend` resolves from a dict and records publication calls with trio's (virtual)
time; `announce` posts browse events through the same `ThreadBridge` zeroconf's threads
use.  Fixtures over these are in conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable

import trio
import trio.testing

from p2pcc.core.zeroconf_names import (
    DISTCC_SERVICE_TYPE,
    P2PCC_SERVICE_TYPE,
    DiscoveredNode,
    DistccdAnnouncement,
    ServiceRecord,
    StockServer,
)
from p2pcc.daemon.mdns.backend import BrowseEvent, MdnsError, ResolvedService
from p2pcc.daemon.mdns.service import MdnsIdentity, MdnsListeners

OWN_ID = b"\x01" * 16
PEER_ID = b"\x02" * 16
IDENTITY = MdnsIdentity("alpha", OWN_ID, "alpha", ("10.0.0.1",), 7463)
ANNOUNCEMENT = DistccdAnnouncement(3632, 2, 4, "x86_64-linux-gnu", "12")
STOCK_TXT = {b"cpus": b"2", b"jobs": b"6", b"cc_machine": b"x86_64-linux-gnu", b"cc_version": b"12"}


class FakeBackend:
    """Resolves from a dict, records publication calls with trio's (virtual) time."""

    def __init__(self) -> None:
        self.post: dict[str, Callable[[BrowseEvent], None]] = {}
        self.services: dict[str, ResolvedService] = {}
        self.resolved: list[str] = []
        self.calls: list[tuple[str, float, ServiceRecord]] = []
        self.gate: trio.Event | None = None  # when set, resolves wait for it
        self.failures = 0  # publication calls that raise before one succeeds

    async def browse(self, service_type: str, post: Callable[[BrowseEvent], None]) -> None:
        self.post[service_type] = post

    async def resolve(self, service_type: str, name: str) -> ResolvedService | None:
        assert name.endswith(service_type)
        self.resolved.append(name)
        if self.gate is not None:
            await self.gate.wait()
        await trio.lowlevel.checkpoint()
        return self.services.get(name)

    async def _publication(self, what: str, record: ServiceRecord) -> None:
        await trio.lowlevel.checkpoint()
        if self.failures:
            self.failures -= 1
            raise MdnsError(f"mDNS {what} failed: injected")
        self.calls.append((what, trio.current_time(), record))

    async def register(self, record: ServiceRecord) -> None:
        await self._publication("register", record)

    async def update(self, record: ServiceRecord) -> None:
        await self._publication("update", record)

    async def unregister(self, record: ServiceRecord) -> None:
        await self._publication("unregister", record)

    def published(self) -> list[ServiceRecord]:
        """What is registered now, by the calls that succeeded: the latest record per name."""
        now: dict[str, ServiceRecord] = {}
        for call, _, record in self.calls:
            now.pop(record.name, None)
            if call != "unregister":
                now[record.name] = record
        return list(now.values())

    def distcc_calls(self) -> list[tuple[str, float, str]]:
        """(call, time, jobs) for our distcc record."""
        return [(c, t, r.txt["jobs"]) for c, t, r in self.calls if "_distcc" in r.type_]


class Seen:
    """Every callback, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, DiscoveredNode | StockServer]] = []

    def listeners(self) -> MdnsListeners:
        return MdnsListeners(
            on_node=lambda n: self.events.append(("node", n)),
            on_node_gone=lambda n: self.events.append(("node-gone", n)),
            on_stock_server=lambda s: self.events.append(("stock", s)),
            on_stock_server_gone=lambda s: self.events.append(("stock-gone", s)),
        )


def p2pcc_service(
    name: str, node_id: bytes, addresses: tuple[str, ...] = ("10.0.0.2",)
) -> ResolvedService:
    txt = {b"txtvers": b"1", b"node": node_id.hex().encode(), b"proto": b"1"}
    return ResolvedService(f"{name}.{P2PCC_SERVICE_TYPE}", addresses, 7463, txt)


def stock_service(name: str, **txt: bytes) -> ResolvedService:
    props = STOCK_TXT | {key.encode(): value for key, value in txt.items()}
    return ResolvedService(f"{name}.{DISTCC_SERVICE_TYPE}", ("10.0.0.3",), 3632, props)


async def announce(backend: FakeBackend, *services: ResolvedService, present: bool = True) -> None:
    """Post browse events the way zeroconf's thread does, and let the service digest them."""
    for resolved in services:
        backend.services[resolved.name] = resolved
        service_type = resolved.name.split(".", 1)[1]
        backend.post[service_type](BrowseEvent(service_type, resolved.name, present))
    await trio.testing.wait_all_tasks_blocked()
