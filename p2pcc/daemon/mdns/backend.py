"""python-zeroconf behind a small async interface that trio code can call safely.

`Zeroconf` runs its own event-loop thread, and each `ServiceBrowser` a thread of its
own that calls our handler.  So every blocking call (construction, register ~1.6 s,
update, unregister, resolve, close) runs in a trio worker thread, and browse callbacks
only `post` an event: the caller's `post` must be safe from any thread and must not
block (`ThreadBridge.post` is).  Zeroconf's exceptions become `MdnsError`.
`open_zeroconf_backend` closes everything on exit, shielded from cancellation, so no
zeroconf thread outlives it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Generic, Protocol, TypeVar

import trio
import zeroconf
from zeroconf import ServiceStateChange

from p2pcc.core import limits
from p2pcc.core.errors import P2pccError
from p2pcc.core.zeroconf_names import ServiceRecord

log = logging.getLogger("p2pcc.mdns")

_T = TypeVar("_T")


class MdnsError(P2pccError):
    """Multicast DNS could not be started, or one registration failed."""


@dataclass(frozen=True, slots=True)
class BrowseEvent:
    """A browsed instance appeared or changed (`present`), or went away."""

    service_type: str
    name: str
    present: bool


@dataclass(frozen=True, slots=True)
class ResolvedService:
    """What resolving an instance gave, unchecked: the parsers decide what is usable."""

    name: str
    addresses: tuple[str, ...]
    port: int | None
    properties: Mapping[bytes, bytes | None]


class MdnsBackend(Protocol):
    """What the mDNS service needs from an mDNS implementation (zeroconf, or a test fake)."""

    async def browse(self, service_type: str, post: Callable[[BrowseEvent], None]) -> None:
        """Start reporting instances of `service_type` to `post`, from any thread."""

    async def resolve(self, service_type: str, name: str) -> ResolvedService | None:
        """The records of one instance, or None if it did not answer in time."""

    async def register(self, record: ServiceRecord) -> None:
        """Publish `record` (its instance may be renamed on a conflict)."""

    async def update(self, record: ServiceRecord) -> None:
        """Re-announce a registered record with new TXT, port or addresses."""

    async def unregister(self, record: ServiceRecord) -> None:
        """Withdraw a registered record (goodbye packets)."""


class ThreadBridge(Generic[_T]):
    """Hands items from any thread to a trio channel; never blocks the posting thread."""

    def __init__(self, token: trio.lowlevel.TrioToken, channel: trio.MemorySendChannel[_T]) -> None:
        self._token = token
        self._channel = channel
        self._overflowing = False
        self.dropped = 0

    def post(self, item: _T) -> None:
        """Queue `item` for trio; dropped silently once trio has finished."""
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._deliver, item)

    def _deliver(self, item: _T) -> None:
        try:
            self._channel.send_nowait(item)
        except trio.WouldBlock:
            self.dropped += 1
            if not self._overflowing:
                log.warning("mDNS events arrive faster than handled; dropping some")
            self._overflowing = True
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # shutting down
        else:
            self._overflowing = False


class ZeroconfBackend:
    """`MdnsBackend` over one python-zeroconf `Zeroconf` instance."""

    def __init__(self, zc: zeroconf.Zeroconf) -> None:
        self._zc = zc
        self._registered: dict[str, zeroconf.ServiceInfo] = {}
        self._browsers: list[zeroconf.ServiceBrowser] = []
        self._resolvers = trio.CapacityLimiter(limits.MDNS_RESOLVE_THREADS)

    async def browse(self, service_type: str, post: Callable[[BrowseEvent], None]) -> None:
        """Start a browser thread whose handler only posts events."""

        def handler(*, name: str, state_change: ServiceStateChange, **_: object) -> None:
            # Runs on the browser's thread: post, never touch trio or block here.
            post(BrowseEvent(service_type, name, state_change is not ServiceStateChange.Removed))

        start = partial(zeroconf.ServiceBrowser, self._zc, service_type, handlers=[handler])
        self._browsers.append(await _call(start, "browse " + service_type))

    async def resolve(self, service_type: str, name: str) -> ResolvedService | None:
        """Ask for SRV, TXT and address records, waiting at most MDNS_RESOLVE_TIMEOUT."""
        timeout_ms = int(limits.MDNS_RESOLVE_TIMEOUT * 1000)
        ask = partial(self._zc.get_service_info, service_type, name, timeout=timeout_ms)
        info = await _call(ask, "resolve " + repr(name[:80]), limiter=self._resolvers)
        if info is None:
            return None
        return ResolvedService(
            name, tuple(info.parsed_scoped_addresses()), info.port, dict(info.properties)
        )

    async def register(self, record: ServiceRecord) -> None:
        """Register with a renaming on conflict, as avahi does for stock distccd."""
        info = _service_info(record, record.name)
        register = partial(self._zc.register_service, info, allow_name_change=True)
        await _call(register, "register " + record.name)
        self._registered[record.name] = info
        if info.name != record.name:
            log.info("mDNS name %r was taken; published as %r", record.name, info.name)

    async def update(self, record: ServiceRecord) -> None:
        """Re-announce under the name the registration ended up with."""
        info = _service_info(record, self._registered[record.name].name)
        await _call(partial(self._zc.update_service, info), "update " + record.name)
        self._registered[record.name] = info

    async def unregister(self, record: ServiceRecord) -> None:
        """Say goodbye for a registered record; unknown records are ignored."""
        info = self._registered.pop(record.name, None)
        if info is not None:
            await _call(partial(self._zc.unregister_service, info), "unregister " + record.name)

    async def aclose(self) -> None:
        """Stop the browsers, say goodbye for everything registered, end zeroconf's threads."""
        await trio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        # Zeroconf.close() only stops browsers made through add_service_listener: ours
        # are cancelled (and their threads joined) here.
        for browser in self._browsers:
            browser.cancel()
        self._zc.close()


@asynccontextmanager
async def open_zeroconf_backend(
    interface_addresses: Sequence[str],
) -> AsyncIterator[ZeroconfBackend]:
    """A zeroconf instance on exactly these interface addresses, closed on exit."""
    try:
        versions = {ipaddress.ip_address(a.partition("%")[0]).version for a in interface_addresses}
    except ValueError as error:
        raise MdnsError(f"cannot start multicast DNS: {error}") from error
    if not versions:
        raise MdnsError("cannot start multicast DNS without an interface address")
    ip_version = {
        frozenset({4}): zeroconf.IPVersion.V4Only,
        frozenset({6}): zeroconf.IPVersion.V6Only,
    }.get(frozenset(versions), zeroconf.IPVersion.All)
    make = partial(zeroconf.Zeroconf, interfaces=list(interface_addresses), ip_version=ip_version)
    try:
        zc = await trio.to_thread.run_sync(make)
    except (zeroconf.Error, OSError, ValueError) as error:
        raise MdnsError(
            f"cannot start multicast DNS on {', '.join(interface_addresses)}: {error}; "
            "check that the interface is up and has a multicast route (224.0.0.0/4)"
        ) from error
    backend = ZeroconfBackend(zc)
    try:
        yield backend
    finally:
        with trio.CancelScope(shield=True):
            await backend.aclose()


def _service_info(record: ServiceRecord, name: str) -> zeroconf.ServiceInfo:
    try:
        return zeroconf.ServiceInfo(
            record.type_,
            name,
            port=record.port,
            properties=dict(record.properties),
            server=record.server,
            # ServiceInfo takes bare addresses; a scope belongs to the interface, not the record.
            parsed_addresses=[address.partition("%")[0] for address in record.addresses],
        )
    except (zeroconf.Error, OSError, ValueError) as error:
        raise MdnsError(f"python-zeroconf refuses our record {name!r}: {error}") from error


async def _call(
    function: Callable[[], _T], what: str, limiter: trio.CapacityLimiter | None = None
) -> _T:
    try:
        return await trio.to_thread.run_sync(function, limiter=limiter)
    except (zeroconf.Error, OSError, ValueError) as error:
        raise MdnsError(f"mDNS {what} failed: {type(error).__name__}: {error}") from error
