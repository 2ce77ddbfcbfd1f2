"""Runs `serve_mdns` in one test-bed workstation and prints what it sees as JSON lines.

    python -m tests.integration.mdns_driver ADDRESS NODE_ID_HEX NAME GOSSIP_PORT [DISTCCD]

DISTCCD announces a distccd: `PORT,CPUS,JOBS` (compiler probed as the daemon does) or
`PORT,CPUS,JOBS,MACHINE,VERSION`.  Lines on stdin steer it: `distccd off`,
`distccd DISTCCD`, `stats` (prints the records dropped so far, by reason, counted
through `on_drop` as the daemon counts them), `quit` (or EOF).
Output: `started`, then `node`/`node-gone`/`stock`/`stock-gone` events, then `stopped`
with the names of threads still alive besides trio's idle workers (should be none) and
the records dropped, by reason.
Also: `LineReader`, which the tests use to read such output with a deadline.
"""

from __future__ import annotations

import json
import os
import select
import sys
import threading
import time
from dataclasses import asdict
from typing import Any

import trio

from p2pcc.core.reports import Reports
from p2pcc.core.zeroconf_names import DiscoveredNode, DistccdAnnouncement
from p2pcc.daemon.mdns.service import MdnsService, probe_announcement, serve_mdns

#: The driver exits by itself after this long, whatever the test does.
LIFETIME = 60.0


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _node_fields(node: DiscoveredNode) -> dict[str, Any]:
    return {**asdict(node), "node_id": node.node_id.hex()}


async def parse_announcement(text: str) -> DistccdAnnouncement:
    """`PORT,CPUS,JOBS` probes the local cc and distccd; five fields give everything."""
    port, cpus, jobs, *compiler = text.split(",")
    if not compiler:
        return await probe_announcement(port=int(port), cpus=int(cpus), jobs=int(jobs))
    machine, version = compiler
    return DistccdAnnouncement(int(port), int(cpus), int(jobs), machine, version)


async def _steer(service: MdnsService, reports: Reports, cancel: trio.CancelScope) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buffered = b""
    async with stdin:
        while chunk := await stdin.receive_some():
            buffered += chunk
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                words = line.decode().split()
                if words == ["quit"]:
                    cancel.cancel()
                elif words == ["stats"]:
                    emit("stats", dropped=reports.mdns_drops())
                elif words[:1] == ["distccd"]:
                    off = words[1] == "off"
                    service.set_distccd(None if off else await parse_announcement(words[1]))
                    emit("distccd", value=words[1])
    cancel.cancel()


async def main(argv: list[str]) -> None:
    address, node_hex, name, port = argv[:4]
    distccd = await parse_announcement(argv[4]) if len(argv) > 4 else None
    reports = Reports()
    with trio.move_on_after(LIFETIME) as cancel:
        async with trio.open_nursery() as nursery:
            service = await nursery.start(
                lambda task_status: serve_mdns(
                    interface_addresses=[address],
                    hostname=os.uname().nodename,
                    node_id=bytes.fromhex(node_hex),
                    node_name=name,
                    gossip_port=int(port),
                    distccd=distccd,
                    on_node=lambda n: emit("node", **_node_fields(n)),
                    on_node_gone=lambda n: emit("node-gone", **_node_fields(n)),
                    on_stock_server=lambda s: emit("stock", **asdict(s)),
                    on_stock_server_gone=lambda s: emit("stock-gone", **asdict(s)),
                    on_drop=reports.count_mdns_drop,
                    task_status=task_status,
                )
            )
            emit("started")
            nursery.start_soon(_steer, service, reports, cancel)
    left = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    threads = [t for t in left if not t.startswith("Trio thread")]
    emit("stopped", threads=threads, dropped=reports.mdns_drops())


class LineReader:
    """Reads JSON or text lines from a pipe, each wait bounded by a deadline."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""
        self.lines: list[str] = []

    def next_line(self, deadline: float) -> str | None:
        """The next line, or None at EOF; TimeoutError once `deadline` (monotonic) passes."""
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._fd], [], [], remaining)[0]:
                raise TimeoutError(f"no complete line in time; got so far: {self.lines[-5:]}")
            chunk = os.read(self._fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        self.lines.append(line.decode(errors="replace"))
        return self.lines[-1]

    def wait_for(self, predicate: Any, timeout: float) -> dict[str, Any]:
        """The first JSON line for which `predicate(event)` holds, within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (line := self.next_line(deadline)) is not None:
            if line.startswith("{") and predicate(event := json.loads(line)):
                return event  # type: ignore[no-any-return]
        raise EOFError(f"output ended first; last lines: {self.lines[-5:]}")


if __name__ == "__main__":
    trio.run(main, sys.argv[1:])
