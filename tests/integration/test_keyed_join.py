"""A keyed pool set up as the README says: `p2pcc keygen` on one workstation, its token
piped into `p2pcc join` on the other, and a real distcc build served across it.

Also: the installed key files are private and equal, neither daemon calls the pool
insecure, and a third workstation that made a key of its own is never taken into the
pool (its datagrams fail the MAC).  Figures are printed with `KEYS-FIGURE: ` (-s).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from p2pcc.core.auth import format_key_line, parse_key_file
from tests.integration.distccd_jobs import jobs_since, log_marks
from tests.integration.netbed import TestBed
from tests.integration.pool import INTERVAL, Daemon, sees_all, share_key, wait_until
from tests.integration.workstation_compilers import pretend_idle

pytestmark = [pytest.mark.integration, pytest.mark.netns]

FIGURE = "KEYS-FIGURE: "
SOURCES = {f"unit{n}.c": f"int unit{n}(int x) {{ return x * {n + 2} + 1; }}\n" for n in range(4)}


def remote_hosts(line: str) -> list[str]:
    """The hosts of a DISTCC_HOSTS line that are not this machine (nor global options)."""
    return [word for word in line.split() if not word.startswith(("localhost", "--", "+"))]


def stop(daemons: Sequence[Daemon]) -> None:
    for daemon in daemons:
        daemon.stop()


def test_keygen_and_join_make_a_pool_that_serves_a_real_build(
    bed: TestBed, shared_tmp: Path
) -> None:
    alpha = Daemon(bed.add_workstation("alpha"), shared_tmp / "alpha")
    beta = Daemon(bed.add_workstation("beta"), shared_tmp / "beta")
    stranger = Daemon(bed.add_workstation("stranger"), shared_tmp / "stranger")
    for daemon in (alpha, beta):
        # One kernel for all: the machine's load would make beta offer no slot.
        pretend_idle(daemon.ws, shared_tmp)
    started = time.monotonic()
    joined = share_key([alpha, beta])
    print(f"\n{FIGURE}keygen + join: {time.monotonic() - started:.2f} s; join said {joined!r}")
    assert joined.startswith(f"installed the pool's key in {beta.home / 'cluster.key'}")
    keys = []
    for daemon in (alpha, beta):
        key_file = daemon.home / "cluster.key"
        status = key_file.lstat()
        assert stat.S_ISREG(status.st_mode)
        assert stat.S_IMODE(status.st_mode) == 0o600
        assert status.st_uid == os.geteuid()
        keys.append(parse_key_file(key_file.read_text(), str(key_file)).keys)
    assert keys[0] == keys[1]
    share_key([stranger])  # a pool of its own: another key
    try:
        for daemon in (alpha, beta, stranger):
            daemon.start()
        names = ["alpha", "beta"]
        wait_until(lambda: sees_all(alpha, names) and sees_all(beta, names), 30, "full tables")
        time.sleep(4 * INTERVAL)  # the stranger has gossiped several times by now
        document = alpha.status()
        assert document is not None
        assert document["node"]["insecure"] is False
        assert "stranger" not in alpha.peers_by_name()
        assert document["counters"]["drops"].get("bad-mac", 0) > 0
        print(f"{FIGURE}alpha's drops with a stranger keyed apart: {document['counters']['drops']}")
        build_on_alpha_served_by_beta(alpha, beta, shared_tmp)
    finally:
        stop([alpha, beta, stranger])
        for daemon in (alpha, beta):
            print(f"--- {daemon.ws.name} log tail\n{daemon.log_text()[-2000:]}")


def build_on_alpha_served_by_beta(alpha: Daemon, beta: Daemon, home: Path) -> None:
    """Compile every source with real distcc on alpha, to beta only, no local fallback."""
    line = wait_until(
        lambda: (
            (text := alpha.cli("hosts", "gcc", check=False).stdout.strip())
            and remote_hosts(text)
            and text
        ),
        30,
        "beta in alpha's hosts line for gcc",
    )
    remote = remote_hosts(line)
    assert all(word.startswith(f"{beta.ws.address}:") for word in remote), line
    sources = home / "src"
    sources.mkdir()
    distcc_dir = home / "distcc"
    distcc_dir.mkdir()
    env = {
        **os.environ,
        "DISTCC_HOSTS": " ".join(remote),
        "DISTCC_DIR": str(distcc_dir),
        "DISTCC_FALLBACK": "0",  # a job beta did not compile fails instead of going local
    }
    marks = log_marks({"beta": beta})
    for name, text in SOURCES.items():
        (sources / name).write_text(text)
        obj = sources / name.replace(".c", ".o")
        alpha.ws.run(
            ["distcc", "gcc", "-O2", "-c", str(sources / name), "-o", str(obj)],
            env=env,
            timeout=60,
        )
        assert obj.stat().st_size > 0
    jobs = jobs_since({"beta": beta}, marks, alpha.ws)["beta"]
    served = sorted(Path(job.source).name for job in jobs if job.status == "COMPILE_OK")
    print(f"{FIGURE}jobs beta served for alpha: {len(served)} of {len(SOURCES)} ({line!r})")
    assert len(served) == len(SOURCES), jobs


def test_an_insecure_pool_says_so_and_a_loose_key_stops_the_daemon(
    bed: TestBed, shared_tmp: Path
) -> None:
    """`insecure = true`: a WARNING in the log, the banner in `status`, a failing
    `doctor`.  A key file others may read: the daemon exits 1 with the chmod to run."""
    loose = Daemon(bed.add_workstation("loose"), shared_tmp / "loose")
    key = shared_tmp / "loose.key"
    key.write_text(format_key_line(os.urandom(32)) + "\n")
    key.chmod(0o644)
    loose.key_file = key
    loose.start()
    assert loose.process is not None
    assert loose.process.wait(timeout=60) == 1
    refusal = loose.log_text().strip()
    print(f"\n{FIGURE}a 0644 key at start: exit 1, {refusal!r}")
    assert refusal == (
        f"p2pcc: {key}: gossip.key_file: has mode 0644: other users can read the cluster key "
        f"and join the pool; run `chmod 600 {key}`"
    )

    open_ = Daemon(bed.add_workstation("open"), shared_tmp / "open", insecure=True)
    open_.start()
    try:
        document = wait_until(open_.status, 30, "the insecure daemon to answer")
        assert document["node"]["insecure"] is True
        warnings = [line for line in open_.log_text().splitlines() if " WARNING " in line]
        assert any("unauthenticated pool (gossip.insecure = true)" in w for w in warnings)
        table = open_.cli("status").stdout
        assert table.startswith("WARNING: unauthenticated pool (gossip.insecure = true).")
        doctor = open_.cli("doctor", check=False)
        assert doctor.returncode == 2
        key_lines = [line for line in doctor.stdout.splitlines() if line.startswith("FAIL  key:")]
        print(f"{FIGURE}doctor on an insecure pool: {key_lines}")
        assert key_lines
        assert "p2pcc keygen" in key_lines[0]
    finally:
        stop([open_])
