"""The closed door, end to end: issue 12's attacks against one keyed pool, as a table.

`alpha` serves and `beta` builds, both members of a keyed pool; `mallory` is a stranger
on the same link with no key and no daemon, inside distccd's own `--allow` (the link's
/24).  In one run:

- the stranger connects to alpha's distccd port (plain TCP) and sends real distcc jobs
  carrying every trick (`-wrapper`, `-fplugin=`, `-B`, `-specs=`, `@file`, `.incbin`):
  the door resets each connection, counts it, and distccd never hears of it;
- the stranger copies the compiler fingerprints it hears on the group and announces
  them, unkeyed, with 128 slots and 50 times the power, while a fake distccd on its
  address counts the jobs it attracts and beta builds through the links;
- beta, a key holder, sends alpha the same tricks: the job guard refuses each, the
  sandbox gives `.incbin` of a secret nothing to read, and every refusal is counted.

Asserted: 0 commands run as distccd's user, 0 secret bytes in any object, 0 connections
to the forger, every refusal counted where it happened, and beta's build goes to alpha
and gives the objects a local compile gives.  The table is printed (`pytest -s`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcc.core.auth import Keyring, parse_key_file
from p2pcc.core.model import Message, MessageKind, NodeStatus
from p2pcc.core.wire import decode, encode
from tests.integration.attacks import (
    DISTCCD_PORT,
    DISTCCD_REFUSES,
    FAKE_DISTCCD,
    distcc_job,
    distccd_log,
    incbin_source,
    node_part,
    probe,
    raw_job,
    tricks,
)
from tests.integration.hostile import read_capture, write_payloads
from tests.integration.netbed import TestBed, Workstation
from tests.integration.pool import GOSSIP_PORT, Daemon, bed_key, start_pool, wait_until
from tests.integration.workstation_compilers import pretend_idle

pytestmark = [pytest.mark.integration, pytest.mark.netns]


GROUP = "239.192.74.70"
HOSTILE = Path(__file__).with_name("hostile.py")
PROBES = 5
PLAIN = "int job(void) { return 1; }\n"
#: Small C files beta builds through the links while the forger is announcing itself.
SOURCES = {
    f"unit{index}.c": f"static int table[] = {{{', '.join(str(i * index) for i in range(40))}}};\n"
    f"int unit{index}(int i) {{ return table[i % 40] * {index + 1}; }}\n"
    for index in range(12)
}


@pytest.fixture
def pool(bed: TestBed, shared_tmp: Path) -> Iterator[list[Daemon]]:
    yield from start_pool(bed, shared_tmp, ("alpha", "beta"), timeout=30)


def test_every_attack_is_refused_counted_and_the_pool_still_builds(
    pool: list[Daemon], bed: TestBed, shared_tmp: Path, readable_secrets: dict[str, bytes]
) -> None:
    alpha, beta = pool
    pretend_idle(alpha.ws, shared_tmp)  # the bed's builds load every workstation at once
    mallory = bed.add_workstation("mallory")
    wait_until(lambda: node_part(alpha, "door").get("members") == 1, 20, "alpha's door up")
    wait_until(lambda: node_part(alpha, "job_guard").get("problem", "") is None, 30, "guard")
    ran = shared_tmp / "ran"
    ran.touch()
    ran.chmod(0o666)  # distccd's user could write it, were a command of its to run
    secret_path, secret_data = next(
        (Path(p), d) for p, d in readable_secrets.items() if p.startswith("/etc/")
    )
    table: list[tuple[str, str, int, int]] = []  # attacker, attack, attempted, refused

    # The stranger at the door: plain TCP, then real distcc jobs with every trick.
    answers = [probe(mallory, alpha.ws.address) for _ in range(PROBES)]
    table.append(("stranger", "TCP connection to distccd", PROBES, answers.count("refused")))
    stranger_jobs = {**tricks(shared_tmp / "stranger", ran), "incbin": []}
    reset = kept_local = 0
    for name, extra in stranger_jobs.items():
        source = incbin_source(str(secret_path)) if name == "incbin" else PLAIN
        workdir = shared_tmp / "stranger" / name
        result = distcc_job(mallory, alpha.ws.address, workdir, source, extra, fallback=False)
        print(f"\nstranger {name}: exit {result.returncode}: {result.stderr.strip()[-300:]}")
        assert result.returncode != 0, result.stderr  # nowhere to compile it
        # distcc itself keeps some tricks on the client (-specs=): they never leave it.
        kept_local += "on localhost failed" in result.stderr
        reset += f"connect to {alpha.ws.address}:{DISTCCD_PORT} failed" in result.stderr
    table.append(
        ("stranger", "distcc jobs with tricks (sent)", len(stranger_jobs) - kept_local, reset)
    )
    door_refused = wait_until(
        lambda: (
            (refused := node_part(alpha, "door").get("refused", 0)) >= PROBES + reset and refused
        ),
        20,
        "the door's refusals counted",
    )
    assert answers == ["refused"] * PROBES
    assert reset + kept_local == len(stranger_jobs)
    assert door_refused == PROBES + reset
    assert mallory.address not in distccd_log(alpha)  # distccd never saw the stranger

    # The stranger as a forged peer, while beta builds through the links.
    forged, catch = forge_peer(alpha, mallory, bed, shared_tmp)
    fake = mallory.start(
        [sys.executable, "-c", FAKE_DISTCCD, mallory.address, str(DISTCCD_PORT), "120", str(catch)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.stdout is not None
        assert fake.stdout.readline().strip() == "ready"
        sender = send_forever(mallory, forged, shared_tmp)
        try:
            remote, lines = build_through_links(beta, alpha, shared_tmp)
        finally:
            sender.kill()
            sender.wait(timeout=10)
    finally:
        fake.kill()
        fake.wait(timeout=10)
        if fake.stdout is not None:
            fake.stdout.close()
    attracted = int(catch.read_text() or "0")
    table.append(("stranger", "forged unkeyed peer (copied fingerprints)", 1, 1 - attracted))
    assert attracted == 0
    assert all(mallory.address not in line for line in lines), lines
    assert all(alpha.ws.address in line for line in lines), lines
    assert remote > 0  # the pool's own build still went to alpha
    for daemon in (alpha, beta):
        assert mallory_unknown(daemon, mallory.address)

    # A key holder's jobs with the same tricks: the guard and the sandbox.
    member_jobs = tricks(shared_tmp / "member", ran)
    compile_args = ["x86_64-linux-gnu-gcc", "-c", "job.c", "-o", "job.o"]
    guarded = dropped = 0
    for name, extra in member_jobs.items():  # sent as they are, past any client-side check
        raw = raw_job(beta.ws, alpha.ws.address, shared_tmp / "member", [*compile_args, *extra])
        print(f"\nkey holder {name}: {raw}")
        assert raw.get("DOTO", "") == "", raw  # no object for any of them
        guarded += raw.get("SERR", "").startswith("p2pcc-guard: error: ")
        dropped += name in DISTCCD_REFUSES and raw == {}  # distccd refuses these itself
    table.append(("key holder", "jobs with tricks", len(member_jobs), guarded + dropped))
    incbin = distcc_job(
        beta.ws,
        alpha.ws.address,
        shared_tmp / "member" / "incbin",
        incbin_source(str(secret_path)),
        [],
        fallback=False,
    )
    obj = shared_tmp / "member" / "incbin" / "job.o"
    stolen = obj.exists() and secret_data in obj.read_bytes()
    table.append(("key holder", ".incbin of a file outside the job", 1, int(not stolen)))
    assert incbin.returncode != 0, incbin.stderr
    assert not stolen
    counted = wait_until(
        lambda: (guard := node_part(alpha, "job_guard")).get("refusals", 0) >= guarded and guard,
        20,
        "the guard's refusals counted",
    )
    assert guarded + dropped == len(member_jobs)
    assert counted["refusals"] == guarded
    assert counted["by_client"] == {beta.ws.address: guarded}

    assert "distccd" not in ran.read_text().split(), ran.read_text()  # 0 commands ran
    print("\n| attacker | attack | attempted | refused |\n|---|---|---|---|")
    for row in table:
        print("| " + " | ".join(map(str, row)) + " |")
    print(f"door counter {door_refused}, guard {counted}")
    assert all(attempted == refused for _, _, attempted, refused in table), table


def forge_peer(
    victim: Daemon, mallory_ws: Workstation, bed: TestBed, home: Path
) -> tuple[list[bytes], Path]:
    """Unkeyed STATE messages of a new node that copies `victim`'s compilers, at mallory's
    address with 128 slots and 50 times the power; and where the fake distccd counts."""
    out = home / "captured.jsonl"
    args = [sys.executable, str(HOSTILE), "capture", mallory_ws.address, GROUP]
    args += [str(GOSSIP_PORT), "5", "20", str(out)]
    mallory_ws.run(args, timeout=30)
    keyring = parse_key_file(bed_key(bed).read_text(), "key")
    statuses = [
        message.body
        for sender, data in read_capture(out)
        if sender == victim.ws.address
        and isinstance((message := decode(data, keyring)).body, NodeStatus)
    ]
    assert statuses, "mallory heard nothing from the victim"
    copied = statuses[-1]
    assert copied.compilers  # the fingerprints to copy
    status = dataclasses.replace(
        copied,
        name="stranger",
        addresses=(mallory_ws.address,),
        slots=128,
        jobs=0,
        load=0.0,
        power=copied.power * 50,
    )
    node_id = os.urandom(16)
    payloads = [
        encode(Message(node_id, 1, sequence, time.time(), MessageKind.STATE, status), Keyring())
        for sequence in range(1, 601)
    ]
    return payloads, home / "attracted"


def send_forever(
    mallory_ws: Workstation, payloads: list[bytes], home: Path
) -> subprocess.Popen[str]:
    """Send the forged messages to the group, 10 a second (about a minute's worth)."""
    path = home / "forged.bin"
    write_payloads(path, payloads)
    args = [sys.executable, str(HOSTILE), "send", mallory_ws.address, str(GOSSIP_PORT)]
    args += [str(path), "10", GROUP]
    return mallory_ws.start(args, stdout=subprocess.DEVNULL)


def build_through_links(builder: Daemon, server: Daemon, home: Path) -> tuple[int, list[str]]:
    """Compile SOURCES on `builder` through its p2pcc links, 8 at a time, and compare each
    object with a local compile; returns how many jobs `server` ran for it and the hosts
    lines `p2pcc hosts` gave meanwhile."""
    links = home / "links"
    builder.cli("install-links", str(links))
    tree = home / "tree"
    tree.mkdir()
    for name, text in SOURCES.items():
        (tree / name).write_text(text)
    before = served_for(server, builder.ws.address)
    lines = [wait_until(lambda: listed(builder, server), 60, f"{server.ws.name} listed")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("P2PCC_", "DISTCC_"))}
    env.update(PATH=f"{links}:{env['PATH']}", DISTCC_DIR=str(home / "distcc-dir"))
    names = " ".join(SOURCES)
    script = f"cd {tree} && printf '%s\\n' {names} | xargs -P8 -I{{}} gcc -O2 -c {{}}"
    result = builder.ws.run(["sh", "-c", script], env=env, timeout=300, check=False)
    lines.append(builder.cli("hosts").stdout.strip())
    assert result.returncode == 0, result.stderr
    for name in SOURCES:
        local = tree / f"{name}.local.o"
        builder.ws.run(["gcc", "-O2", "-c", str(tree / name), "-o", str(local)])
        assert (tree / name.replace(".c", ".o")).read_bytes() == local.read_bytes(), name
    return served_for(server, builder.ws.address) - before, lines


def listed(builder: Daemon, server: Daemon) -> str:
    """`builder`'s hosts line if it lists `server`, else ""."""
    line = builder.cli("hosts").stdout.strip()
    return line if server.ws.address in line else ""


def served_for(server: Daemon, client: str) -> int:
    """Jobs `server`'s distccd finished for `client`, from its log."""
    return sum(
        f"client: {client}:" in line and "COMPILE_OK" in line
        for line in distccd_log(server).splitlines()
    )


def mallory_unknown(daemon: Daemon, address: str) -> bool:
    """Whether no peer in `daemon`'s table has mallory's address."""
    status = daemon.status()
    assert status is not None
    return all(address not in json.dumps(peer) for peer in status["peers"])
