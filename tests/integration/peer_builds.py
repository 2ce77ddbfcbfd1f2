"""A real build on one workstation that must compile on its peers, and the proof it did.

Brotli's quick part (tests/integration/office.py, QUICK) with the p2pcc links and
DISTCC_FALLBACK=0, so a job a peer cannot take fails the build instead of compiling
locally; its objects must be those of a local build, and the peers' distccd logs must
show the client's jobs.  Shared by the pools that span IPv6 and routed subnets.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from p2pcc import statefile
from tests.integration import project
from tests.integration.distccd_jobs import log_file
from tests.integration.distccd_log_lines import JobRecord, parse_distccd_job_line
from tests.integration.office import QUICK, build_env, install_links
from tests.integration.pool import Daemon, wait_until

BUILD_TIMEOUT = 240.0


def build_brotli(
    client: Daemon, base: Path, label: str, *, links: Path | None, **extra_env: str
) -> project.Tree:
    """Brotli's quick part built on `client`: with `links` first in PATH, or locally."""
    tree = project.unpack(project.BROTLI, base / f"build-{label}", only=QUICK)
    env = build_env(links, base / f"distcc-dir-{label}")
    env.update(DISTCC_LOG=str(base / f"distcc-{label}.log"), **extra_env)
    argv = project.make_command(tree, "gcc", 8 if links else 2, BUILD_TIMEOUT)
    result = client.ws.run(argv, env=env, check=False, timeout=BUILD_TIMEOUT + 30)
    log = Path(env["DISTCC_LOG"])
    detail = log.read_text()[-3000:] if log.exists() else ""
    assert result.returncode == 0, f"{result.stderr[-3000:]}\n--- distcc log\n{detail}"
    assert set(project.objects(tree.path)) == tree.object_names
    return tree


def log_size(daemon: Daemon) -> int:
    """Where `daemon`'s distccd log ends now (a mark for `jobs_since`)."""
    path = log_file(daemon)
    return path.stat().st_size if path.exists() else 0


def jobs_since(
    client_address: str, peers: Mapping[str, Daemon], marks: Mapping[str, int]
) -> dict[str, list[JobRecord]] | None:
    """The client's jobs in each peer's distccd log since `marks`, once there are some."""
    jobs: dict[str, list[JobRecord]] = {}
    for name, daemon in peers.items():
        text = log_file(daemon).read_bytes()[marks[name] :].decode(errors="replace")
        records = [parse_distccd_job_line(line) for line in text.splitlines()]
        jobs[name] = [r for r in records if r and r.client.startswith(f"{client_address}:")]
    return jobs if any(jobs.values()) else None


def hosts_lines(daemon: Daemon) -> str:
    """Every DISTCC_HOSTS line in `daemon`'s state file now, joined."""
    state = statefile.read(str(daemon.runtime_dir / statefile.FILE_NAME))
    return "" if state is None else " | ".join(line for _, line in state[1].values())


def builds_on_peers(
    client: Daemon, peers: Mapping[str, Daemon], base: Path, client_address: str
) -> dict[str, int]:
    """Build brotli on `client` locally, then through its links with DISTCC_FALLBACK=0:
    the objects must match and every peer's job lines be successes; jobs per peer."""
    links = base / "links"
    install_links(client, links, client.config_path)
    reference = build_brotli(client, base, "reference", links=None)
    marks = {name: log_size(daemon) for name, daemon in peers.items()}
    built = build_brotli(client, base, "remote", links=links, DISTCC_FALLBACK="0")
    assert project.differing_objects(built.path, reference.path) == []
    jobs = wait_until(lambda: jobs_since(client_address, peers, marks), 20, "the job lines")
    assert all(job.ok for records in jobs.values() for job in records)
    return {name: len(records) for name, records in jobs.items()}
