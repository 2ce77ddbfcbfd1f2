"""Browsing one mDNS service type: names that appear are resolved, parsed and tabled.

zeroconf reports only that a name appeared or went; a `Watcher` resolves each appearing
name in a task of its own, parses the answer (the service's parser, which raises
`ZeroconfRecordError` for a bad record), and reports a record that is new or changed,
and a record's goodbye, once each.  Anyone on the link can announce names, so the table
(`cap`) and the names being resolved (`MAX_MDNS_PENDING`) are capped, and a name that
changes while it is being resolved is resolved again rather than answered twice at once.
`Drops` reports every record dropped, by reason, to `on_drop`, and logs each (instance,
reason) once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, TypeVar

import trio

from p2pcc.core import limits
from p2pcc.core.zeroconf_names import DiscoveredNode, StockServer
from p2pcc.core.zeroconf_parse import ZeroconfRecordError
from p2pcc.daemon.mdns.backend import BrowseEvent, MdnsBackend, MdnsError, ResolvedService

log = logging.getLogger("p2pcc.mdns")

_R = TypeVar("_R", DiscoveredNode, StockServer)


class Drops:
    """Reports each dropped record's reason to `on_drop`; logs each (instance, reason) once."""

    def __init__(self, on_drop: Callable[[str], None] | None = None) -> None:
        self._on_drop = on_drop
        self._logged: set[tuple[str, str]] = set()

    def drop(self, name: str, reason: str, detail: str) -> None:
        if self._on_drop is not None:
            self._on_drop(reason)
        if (name, reason) in self._logged:
            return
        if len(self._logged) >= limits.MAX_MDNS_LOGGED_DROPS:
            self._logged.clear()
        self._logged.add((name, reason))
        log.info("ignoring mDNS record %r: %s", name[:100], detail)


class Watcher(Generic[_R]):
    """One browsed type: resolves names that appear, keeps a capped table, reports changes."""

    def __init__(
        self,
        service_type: str,
        *,
        parse: Callable[[ResolvedService], _R | None],
        cap: int,
        found: Callable[[_R], None],
        gone: Callable[[_R], None],
        drops: Drops,
    ) -> None:
        self.service_type = service_type
        self._table: dict[str, _R] = {}
        self._parse: Callable[[ResolvedService], _R | None] = parse
        self._cap = cap
        self._found: Callable[[_R], None] = found
        self._gone: Callable[[_R], None] = gone
        self._drops = drops
        self._pending: dict[str, bool] = {}  # name -> present, per the latest event
        self._again: set[str] = set()  # changed again while being resolved

    def on_event(self, event: BrowseEvent, nursery: trio.Nursery, backend: MdnsBackend) -> None:
        key = event.name.lower()  # DNS names compare case-insensitively
        if key in self._pending:
            self._pending[key] = event.present
            if event.present:
                self._again.add(key)
        if not event.present:
            self._forget(key)
        elif key in self._pending:
            pass
        elif key not in self._table and len(self._table) >= self._cap:
            self._drops.drop(event.name, "table-full", f"already tracking {self._cap}")
        elif len(self._pending) >= limits.MAX_MDNS_PENDING:
            self._drops.drop(event.name, "busy", "too many names being resolved")
        else:
            self._pending[key] = True
            nursery.start_soon(self._resolve, key, event.name, backend)

    async def _resolve(self, key: str, name: str, backend: MdnsBackend) -> None:
        try:
            while True:
                self._again.discard(key)
                try:
                    resolved = await backend.resolve(self.service_type, name)
                except MdnsError as error:
                    resolved = None
                    log.debug("%s", error)
                if self._pending[key]:
                    self._accept(key, name, resolved)
                if key not in self._again:
                    return
        finally:
            del self._pending[key]
            self._again.discard(key)

    def _accept(self, key: str, name: str, resolved: ResolvedService | None) -> None:
        if resolved is None:
            self._drops.drop(name, "unresolved", "it did not answer a resolve")
            return
        try:
            record = self._parse(resolved)
        except ZeroconfRecordError as error:
            self._drops.drop(name, error.reason, str(error))
            self._forget(key)
            return
        if record is None or self._table.get(key) == record:
            return
        if key not in self._table and len(self._table) >= self._cap:
            self._drops.drop(name, "table-full", f"already tracking {self._cap}")
            return
        self._table[key] = record
        self._found(record)

    def _forget(self, key: str) -> None:
        record = self._table.pop(key, None)
        if record is not None:
            self._gone(record)
