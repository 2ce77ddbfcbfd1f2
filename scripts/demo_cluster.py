"""The demo: four namespace workstations, one real C project built across them.

    sudo scripts/demo          # installs what it needs, then runs this

Workstations, each with its own network, hostname and `p2pcc daemon` (and so its own
distccd), on a private bridge (tests/integration/cluster.py builds them):
  client  gcc-12; the compiler links are installed here and the build runs here
  fast    gcc-12
  slow    gcc-12, held to 15 % of one CPU by a cgroup: genuinely slow
  old     every gcc name runs gcc-11 (even x86_64-linux-gnu-gcc-12): must get no job
They share one cluster key as the README's install section does it: `p2pcc keygen` on
client, its token piped into `p2pcc join` on each of the others.  The build is Google's
brotli (31 C files from its PyPI sdist), with `p2pcc build --trace`: the trace (one
track per host, one span per compile; open it in ui.perfetto.dev) is kept in
TRACE_FILE, and the demo prints where and what it shows.  Everything else is torn down
at the end, on failure and on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration import project
from tests.integration.cluster import NAMES, Cluster, open_cluster
from tests.integration.distccd_jobs import jobs_since, log_marks
from tests.integration.office import build_env

#: Where the demo's build trace is kept (the rest of the demo goes with its namespaces).
TRACE_FILE = Path(tempfile.gettempdir()) / "p2pcc-demo-trace.json"


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def detail(text: str) -> None:
    print("   " + text.replace("\n", "\n   "), flush=True)


def build_through_links(cluster: Cluster) -> None:
    """`p2pcc build make` in the client, then who compiled what."""
    say("downloading brotli's sources (PyPI sdist, cached) and writing a Makefile")
    tree = project.unpack(project.BROTLI, cluster.home / "brotli")
    env = build_env(cluster.links, cluster.home / "distcc")
    say("what the pool looks like from the client")
    print(cluster.p2pcc("status", env=env).rstrip())
    say("building: p2pcc build --trace make   (links first in PATH, a -j that follows the pool)")
    marks = log_marks(cluster.daemons)
    started = time.monotonic()
    p2pcc_build = [
        sys.executable,
        "-m",
        "p2pcc",
        "build",
        "--trace",
        str(TRACE_FILE),
        "--config",
        str(cluster.client.config_path),
    ]
    build = cluster.stations["client"].run(
        [*p2pcc_build, "make", "-C", str(tree.path), "CC=gcc"],
        env=env,
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - started
    if build.returncode != 0:
        print(build.stdout[-3000:], build.stderr[-3000:])
        raise SystemExit(f"the build failed with status {build.returncode}")
    say(f"built {len(tree.sources)} objects in {elapsed:.1f} s")
    records = jobs_since(cluster.daemons, marks, cluster.stations["client"])
    counts = {name: sum(1 for record in records[name] if record.ok) for name in NAMES[1:]}
    peers = cluster.peers()
    for name in NAMES[1:]:
        offered = f"(offers {peers[name]['slots']} slots, power {peers[name]['power']:.2f})"
        detail(f"compiled on {name:5}: {counts[name]:3}  {offered}")
    detail(f"compiled on client itself: {max(0, len(tree.sources) - sum(counts.values()))}")
    if counts["old"]:
        raise SystemExit("the gcc-11 workstation got jobs: that would be a wrong build")
    detail("the gcc-11 workstation got none, as it must")
    if peers["slow"]["slots"] == 0:
        detail("slow offers no slot: its cgroup leaves it less than half a CPU (docs/metrics.md)")
    at_home = max(0, len(tree.sources) - sum(counts.values()))
    show_trace(cluster, {**counts, "localhost": at_home})


def show_trace(cluster: Cluster, compiled: dict[str, int]) -> None:
    """Where the build's trace is, its spans per host track, and whether they are the
    compiles the distccd logs and the objects say each host did."""
    document = json.loads(TRACE_FILE.read_text())
    events = document["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    addresses = {station.address: name for name, station in cluster.stations.items()}
    spans: dict[str, int] = {}
    for event in events:
        if event["ph"] == "X":
            host = names.get(event["pid"], "?")
            label = addresses.get(host, host)
            spans[label] = spans.get(label, 0) + 1
    say(f"the build's trace: {TRACE_FILE}  (open it in https://ui.perfetto.dev)")
    for label, count in sorted(spans.items()):
        detail(f"{label:16} {count:3} compile span(s)")
    expected = {name: count for name, count in compiled.items() if count}
    if spans == expected:
        detail("one span per compile, on the track of the host that compiled it")
    else:
        detail(f"the trace differs from the distccd logs: {spans} against {expected}")


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("the demo makes network namespaces: run it as root (sudo scripts/demo)")
    home = Path(tempfile.mkdtemp(prefix="p2pcc-demo-"))
    home.chmod(0o755)
    try:
        with open_cluster(home, step=say, detail=detail) as cluster:
            build_through_links(cluster)
    except KeyboardInterrupt:
        print("\ninterrupted: tearing everything down")
    finally:
        shutil.rmtree(home, ignore_errors=True)
        print("demo finished; every namespace and process is gone", flush=True)


if __name__ == "__main__":
    main()
