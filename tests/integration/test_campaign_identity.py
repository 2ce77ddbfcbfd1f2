"""The identity campaign: machines cloned from one disk image, and damaged id files, on
real daemons in namespace workstations.

* Two daemons started with the same `node-id` (and `incarnation`) file content, as two
  workstations cloned from one image would be: they must become two peers of each other
  within seconds, both must say so once in their log, the one that took a new id must
  have it on disk (and keep it across a restart), and `status`/`doctor` must show it.
* Daemons whose `node-id` is empty (a power cut right after the first start), garbage,
  a FIFO or a link to another node's id file: each must start, warn once naming the
  file, write a new id of its own and join the pool.

Figures are printed with the prefix `IDENTITY-FIGURE: ` (run with -s); docs/security.md
records them.  Unit-level proofs: tests/daemon/stores/test_identity.py,
tests/core/test_same_id.py, tests/core/test_cluster_sim.py,
tests/daemon/test_identity_renewal.py.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.netbed import TestBed
from tests.integration.pool import INTERVAL, Daemon, start_pool, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.netns]

FIGURE = "IDENTITY-FIGURE: "
SHARED_ID = "c1" * 16
ALPHA_ID = "a1" * 16

#: The log line each of two daemons sharing an id writes once (p2pcc.daemon.identity_renewal).
SHARED_LINE = "uses this node's id"
#: The warning a damaged id file gives (p2pcc.daemon.stores.identity).
DAMAGED_LINE = "held no node id"

LOG_LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)")


def log_times(daemon: Daemon, needle: str, *, exact: bool = False) -> list[float]:
    """When (Unix time, from the log's own stamps) `daemon` logged a message holding
    `needle` (or, `exact`, being it)."""
    times = []
    for line in daemon.log_text().splitlines():
        match = LOG_LINE.match(line)
        if match and (match.group(2) == needle if exact else needle in match.group(2)):
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            times.append(stamp.timestamp())
    return times


def lines_with(daemon: Daemon, needle: str) -> list[str]:
    return [line for line in daemon.log_text().splitlines() if needle in line]


def prepare(home: Path, name: str, node_id: str | None = None) -> Path:
    """The home of workstation `name`, holding `node_id` in its id file if given."""
    (home / name).mkdir(parents=True)
    id_file = home / name / "node-id"
    if node_id is not None:
        id_file.write_text(node_id + "\n")
    return id_file


def stored_id(daemon: Daemon) -> str:
    return (daemon.home / "node-id").read_text().strip()


def status_of(daemon: Daemon) -> dict[str, object]:
    status = daemon.status()
    assert status is not None, f"{daemon.ws.name} does not answer"
    node: dict[str, object] = status["node"]
    return node


# --- two machines cloned from one disk image ------------------------------------------------


def test_two_daemons_cloned_from_one_image_become_two_peers(
    bed: TestBed, shared_tmp: Path, key_file: Path
) -> None:
    names = ("alpha", "beta")
    # The image was made a day ago: both keep its id, and count incarnations from it.
    image_incarnation = f"{int((time.time() - 86400) * 1000)}\n"
    for name in names:
        prepare(shared_tmp, name, SHARED_ID)
        (shared_tmp / name / "incarnation").write_text(image_incarnation)
    started = time.time()
    for daemons in start_pool(bed, shared_tmp, names, key_file, timeout=30):
        full_table = time.time() - started
        # Gossip starts right after distccd serves (p2pcc.daemon.run).
        both_gossip = max(min(log_times(d, "serves on")) for d in daemons)
        said = max(min(log_times(d, SHARED_LINE)) for d in daemons) - both_gossip
        healed = max(min(log_times(d, "joined")) for d in daemons) - both_gossip
        print(
            f"\n{FIGURE}two daemons with one node id: start to both peers {full_table:.2f} s; "
            f"after the later one began to gossip: both had logged it after {said:.2f} s, "
            f"both were peers after {healed:.2f} s (interval {INTERVAL} s)"
        )
        check_one_renewed(daemons)
        check_doctor(daemons)
        check_restart_keeps_the_new_id(daemons, names)
        assert healed < 4 * INTERVAL


def check_one_renewed(daemons: Sequence[Daemon]) -> None:
    """Both said it once; exactly one took a new id, and has it on disk."""
    for daemon in daemons:
        lines = lines_with(daemon, SHARED_LINE)
        other = next(d for d in daemons if d is not daemon)
        assert len(lines) == 1, f"{daemon.ws.name}: {lines}"
        assert f"the machine at {other.ws.address} uses this node's id {SHARED_ID}" in lines[0]
    nodes = {daemon.ws.name: status_of(daemon) for daemon in daemons}
    renewed = [d for d in daemons if nodes[d.ws.name]["node_id"] != SHARED_ID]
    assert len(renewed) == 1, nodes
    (new,) = renewed
    assert stored_id(new) == nodes[new.ws.name]["node_id"]
    assert "this node takes the new id" in lines_with(new, SHARED_LINE)[0]
    for daemon in daemons:
        shared = nodes[daemon.ws.name]["duplicate_id"]
        assert isinstance(shared, dict)
        assert shared["shared_id"] == SHARED_ID
        assert shared["new_id_here"] is (daemon is new)
        assert shared["healed"] is True
    kept = next(d for d in daemons if d is not new)
    assert stored_id(kept) == SHARED_ID
    print(f"{FIGURE}{new.ws.name} took the new id {stored_id(new)}; {kept.ws.name} kept it")


def check_doctor(daemons: Sequence[Daemon]) -> None:
    for daemon in daemons:
        result = daemon.cli("doctor", check=False)
        (line,) = [line for line in result.stdout.splitlines() if " node id: " in line]
        assert line.startswith("ok "), line
        assert "are peers now" in line
        print(f"{FIGURE}doctor on {daemon.ws.name}: {line}")


def check_restart_keeps_the_new_id(daemons: Sequence[Daemon], names: Sequence[str]) -> None:
    """The renewed daemon restarts under its new id: no second renewal, peers at once."""
    new = next(d for d in daemons if stored_id(d) != SHARED_ID)
    kept = next(d for d in daemons if d is not new)
    new_id = stored_id(new)
    assert new.process is not None
    new.process.send_signal(signal.SIGTERM)
    new.process.wait(timeout=20)
    new.start()

    def back() -> bool:
        peer = kept.peers_by_name().get(new.ws.name)
        return peer is not None and peer["liveness"] == "alive" and peer["node_id"] == new_id

    wait_until(back, 20, f"{new.ws.name} to come back under its new id")
    assert status_of(new)["node_id"] == new_id
    assert status_of(new)["duplicate_id"] is None
    assert SHARED_LINE not in new.log_files[-1].read_text()


# --- damaged id files -------------------------------------------------------------------------


def test_daemons_with_damaged_id_files_start_warn_once_and_join(
    bed: TestBed, shared_tmp: Path, key_file: Path
) -> None:
    prepare(shared_tmp, "alpha", ALPHA_ID)
    (prepare(shared_tmp, "empty")).write_text("")
    (prepare(shared_tmp, "garbage")).write_bytes(b"\x00\xffnot a node id\n" * 4)
    os.mkfifo(prepare(shared_tmp, "fifo"))
    (prepare(shared_tmp, "link")).symlink_to(shared_tmp / "alpha" / "node-id")
    damaged = ("empty", "garbage", "fifo", "link")
    names = ("alpha", *damaged)
    started = time.time()
    for daemons in start_pool(bed, shared_tmp, names, key_file, timeout=30):
        full_table = time.time() - started
        ready = {d.ws.name: min(log_times(d, "ready", exact=True)) - started for d in daemons}
        ids = {d.ws.name: status_of(d)["node_id"] for d in daemons}
        assert ids["alpha"] == ALPHA_ID
        assert len(set(ids.values())) == len(names)  # the link was not followed
        for daemon in daemons[1:]:
            warnings = lines_with(daemon, DAMAGED_LINE)
            assert len(warnings) == 1, f"{daemon.ws.name}: {warnings}"
            assert f"{daemon.home / 'node-id'} held no node id" in warnings[0]
            id_file = daemon.home / "node-id"
            assert id_file.is_file()
            assert not id_file.is_symlink()
            assert stored_id(daemon) == ids[daemon.ws.name]
            assert lines_with(daemon, SHARED_LINE) == []
            print(f"{FIGURE}{daemon.ws.name} id file: {warnings[0].split(': ', 1)[1]}")
        assert (shared_tmp / "alpha" / "node-id").read_text() == ALPHA_ID + "\n"
        print(
            f"{FIGURE}pool of alpha and {len(damaged)} daemons with damaged id files "
            f"({', '.join(damaged)}): start to full tables {full_table:.2f} s; ready after "
            + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in ready.items())
        )
        assert all(d.process is not None and d.process.poll() is None for d in daemons)
