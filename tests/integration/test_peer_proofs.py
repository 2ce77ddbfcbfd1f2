"""Every peer proven by a real compile, on the office (tests/integration/office.py).

The client's daemon proves each peer that offers one of its compilers by itself once it
is idle, and `p2pcc doctor --peers` proves them again at once; both send the tiny file
through real distcc to the peer's real distccd and compare the object with the client's
own.  Then two broken peers:

* `peer12` refuses connections on its distccd port (an nftables reject in its namespace,
  as a stopped distccd does): doctor reports it, the others stay ok;
* `peer12`'s gcc-12 emits other code under the same fingerprint: a `specs` file added
  to its gcc directory (an overlay in its mount namespace) makes every compile there
  `-O0`, while the binaries the fingerprint hashes stay the same — the case fingerprints
  cannot see.  The client's daemon, restarted so that its hourly proof comes at once,
  finds a different object, drops peer12 from its gcc-12 line and says so in `p2pcc
  status`; doctor fails it.  Once the specs file is gone, `p2pcc remeasure peer12` has
  it proven again at once, and it is back in the line.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.office import GCC11, GCC12, Office, control_status, open_office
from tests.integration.pool import Daemon, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.netns]


@pytest.fixture(scope="module")
def office() -> Iterator[Office]:
    """The office with proofs on (the other modules' bed leaves them off)."""
    with open_office(proofs=True) as opened:
        yield opened


#: Some of what the client's daemon must prove: each peer's offers of the client's C
#: compilers (its g++ and clang are proven too); pure11's "gcc-12" is really gcc-11:
#: another fingerprint, so no gcc-12 target there.
EXPECTED = {("peer12", GCC12), ("mixed", GCC12), ("mixed", GCC11), ("pure11", GCC11)}
GCC12_DIR = "/usr/lib/gcc/x86_64-linux-gnu/12"
#: gcc reads a `specs` file in its own directory: this one ends every cc1 command line
#: with -O0, so the proof's -O2 is overridden there and nowhere else.
O0_SPECS = "*cc1_options:\n+ -O0\n\n"
NFT_TABLE = "p2pcc_test_proof"
PROVE_TIMEOUT = 150.0


def proofs(daemon: Daemon) -> dict[tuple[str, str], dict[str, Any]]:
    """The daemon's proofs by (peer name, compiler); empty while it does not answer."""
    status = control_status(daemon)
    return {} if status is None else {(p["name"], p["compiler"]): p for p in status["proofs"]}


def outcomes(daemon: Daemon) -> dict[tuple[str, str], str | None]:
    return {key: p["last"] and p["last"]["outcome"] for key, p in proofs(daemon).items()}


def doctor_peers(daemon: Daemon) -> subprocess.CompletedProcess[str]:
    result = daemon.cli("doctor", "--peers", check=False)
    print(f"\n$ p2pcc doctor --peers (exit {result.returncode})\n{result.stdout}{result.stderr}")
    return result


def finding(stdout: str, level: str, name: str, compiler: str) -> str:
    """The finding line of `name`'s proof for `compiler`, which must be at `level`."""
    pattern = rf"^{re.escape(level)}\s+proof {re.escape(name)} {re.escape(compiler)}: .*$"
    found = re.search(pattern, stdout, re.MULTILINE)
    assert found, f"no {level} line for {name} {compiler} in:\n{stdout}"
    return found.group(0)


def in_line(office: Office, fingerprint: str, name: str) -> bool:
    """Whether workstation `name` is in the client's hosts line for `fingerprint` now."""
    status = control_status(office.client)
    line = "" if status is None else status["hosts"].get(fingerprint, {}).get("hosts", "")
    return f" {office.daemons[name].ws.address}:" in f" {line}"


def restart(daemon: Daemon) -> None:
    """Stop the daemon (SIGTERM, as systemd does) and start it again: its proofs are
    kept in memory only, so every pair is proven again once it is idle."""
    assert daemon.process is not None
    daemon.process.terminate()
    daemon.process.wait(timeout=30)
    daemon.start()


@pytest.fixture
def o0_peer12(office: Office) -> Iterator[Path]:
    """peer12's gcc-12 compiling at -O0 whatever it is told (see the module docstring)."""
    layer = office.base / "layers" / "peer12-specs"
    layer.mkdir(parents=True, exist_ok=True)
    layer.chmod(0o755)  # distccd's user runs the compiler
    (layer / "specs").write_text(O0_SPECS)
    (layer / "specs").chmod(0o644)
    ws = office.daemons["peer12"].ws
    overlay = f"lowerdir={layer}:{GCC12_DIR}"
    ws.run(["mount", "-t", "overlay", "p2pcc-test-specs", "-o", overlay, GCC12_DIR])
    try:
        yield layer
    finally:
        ws.run(["umount", GCC12_DIR], check=False)
        restart(office.client)  # forget the verdict before the next test


def test_the_daemon_and_doctor_prove_every_peer_offering_a_compiler_of_ours(
    office: Office,
) -> None:
    office.ready()
    client = office.client
    wait_until(
        lambda: set(outcomes(client)) >= EXPECTED and None not in outcomes(client).values(),
        PROVE_TIMEOUT,
        "the client's daemon to prove every peer by itself",
    )
    proven = outcomes(client)
    print(f"\nthe client's daemon proved {len(proven)} pairs: {sorted(proven)}")
    assert set(proven.values()) == {"ok"}
    assert ("pure11", GCC12) not in proven
    entry = proofs(client)[("peer12", GCC12)]
    assert entry["host"] == f"{office.daemons['peer12'].ws.address}:3632/1"
    assert entry["excluded"] is False
    result = doctor_peers(client)
    assert result.returncode == 0
    line = finding(result.stdout, "ok", "peer12", GCC12)
    assert re.search(r"same object as here, \d+ ms via ", line)
    for name, compiler in proven:
        finding(result.stdout, "ok", name, compiler)
    assert f"proof pure11 {GCC12}" not in result.stdout
    summary = rf"^proofs: {len(proven)} ok \(\d+-\d+ ms\)$"
    assert re.search(summary, client.cli("status").stdout, re.M)


def test_doctor_reports_a_peer_whose_distccd_refuses_connections(office: Office) -> None:
    office.ready()
    ws = office.daemons["peer12"].ws
    ws.run(["nft", "add", "table", "inet", NFT_TABLE])
    hook = "{ type filter hook input priority -10; policy accept; }"
    ws.run(["nft", f"add chain inet {NFT_TABLE} input {hook}"])
    ws.run(["nft", f"add rule inet {NFT_TABLE} input tcp dport 3632 reject with tcp reset"])
    try:
        result = doctor_peers(office.client)
    finally:
        ws.run(["nft", "delete", "table", "inet", NFT_TABLE], check=False)
    assert result.returncode == 1  # a warning: builds still get right objects elsewhere
    line = finding(result.stdout, "warn", "peer12", GCC12)
    assert "refused via" in line
    assert "Connection refused" in line
    assert "is its daemon serving?" in line
    finding(result.stdout, "ok", "mixed", GCC12)


def test_a_peer_whose_compiler_emits_other_code_is_dropped_and_shown(
    office: Office, o0_peer12: Path
) -> None:
    office.ready()
    client, peer12 = office.client, office.daemons["peer12"]
    offered = {c["fingerprint"] for c in control_status(peer12)["node"]["compilers"]}  # type: ignore[index]
    restart(client)
    wait_until(
        lambda: outcomes(client).get(("peer12", GCC12)) == "different object",
        PROVE_TIMEOUT,
        "the client's daemon to find peer12's object different",
    )
    # The fingerprint did not see it: peer12 still offers the same compilers.
    now_offered = {c["fingerprint"] for c in control_status(peer12)["node"]["compilers"]}  # type: ignore[index]
    assert now_offered == offered
    entry = proofs(client)[("peer12", GCC12)]
    assert entry["excluded"] is True
    assert entry["fingerprint"] in offered
    # Out of the gcc-12 line (its clang, unchanged, stays in clang's); mixed stays in.
    fingerprint = entry["fingerprint"]
    wait_until(
        lambda: not in_line(office, fingerprint, "peer12"), 10, "peer12 to leave the gcc-12 line"
    )
    assert in_line(office, fingerprint, "mixed")
    status = client.cli("status").stdout
    print(status)
    assert re.search(
        rf"^proof: peer12: different object for {GCC12} at \d\d:\d\d "
        r"\(\d+ bytes against \d+ here\): left out of its hosts line$",
        status,
        re.MULTILINE,
    )
    result = doctor_peers(client)
    assert result.returncode == 2
    assert "different object via" in finding(result.stdout, "FAIL", "peer12", GCC12)
    finding(result.stdout, "ok", "mixed", GCC12)
    assert "left out" in client.log_text()
    # Its owner fixes it; `remeasure` has it proven again at once, not in an hour.
    peer12.ws.run(["umount", GCC12_DIR])
    said = client.cli("remeasure", "peer12").stdout
    assert "proving again when this machine is idle: peer12" in said
    wait_until(
        lambda: outcomes(client).get(("peer12", GCC12)) == "ok",
        PROVE_TIMEOUT,
        "the client's daemon to prove the fixed peer12 again",
    )
    wait_until(lambda: in_line(office, fingerprint, "peer12"), 10, "peer12 back in the line")
