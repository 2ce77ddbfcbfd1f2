"""The demo: four namespace workstations, one real C project built across them.

    sudo scripts/demo          # installs what it needs, then runs this

Workstations, each with its own network, hostname and `p2pcc daemon` (and so its own
distccd), on a private bridge:
  client  gcc-12; the compiler links are installed here and the build runs here
  fast    gcc-12
  slow    gcc-12, held to 15 % of one CPU by a cgroup: genuinely slow
  old     every gcc name runs gcc-11 (even x86_64-linux-gnu-gcc-12): must get no job
The build is Google's brotli (31 C files from its PyPI sdist).  Everything is torn down
at the end, on failure and on Ctrl-C.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc.core.auth import format_key_line
from tests.integration import project, workstation_compilers
from tests.integration.netbed import TestBed, Workstation
from tests.integration.pool import Daemon, wait_until

SLOW_CPU_SHARE = 0.15
NAMES = ("client", "fast", "slow", "old")


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def p2pcc(ws: Workstation, daemon: Daemon, *args: str, env: dict[str, str] | None = None) -> str:
    result = ws.run(
        [sys.executable, "-m", "p2pcc", *args, "--config", str(daemon.config_path)],
        env=env,
        timeout=60,
        check=False,
    )
    return result.stdout + result.stderr


def jobs_per_workstation(daemons: dict[str, Daemon]) -> dict[str, int]:
    """Compile jobs each workstation's distccd finished, from its log."""
    counts = {}
    for name, daemon in daemons.items():
        log = daemon.runtime_dir / "distccd" / "distccd.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        counts[name] = len(re.findall(r"COMPILE_OK", text))
    return counts


def run_demo(home: Path) -> None:
    key = home / "cluster.key"
    key.write_text(format_key_line(os.urandom(32)) + "\n")
    key.chmod(0o600)
    with TestBed() as bed:
        say("bringing up four workstations on a private bridge: " + ", ".join(NAMES))
        stations = {name: bed.add_workstation(name) for name in NAMES}
        for name, ws in stations.items():
            workstation_compilers.pretend_idle(ws, home)
            print(f"   {name:7} {ws.address}")
        say("old: every gcc name now runs gcc-11 (a partial upgrade that lies)")
        workstation_compilers.shadow_usr_bin(
            stations["old"], workstation_compilers.PURE11, home / "old-usr-bin"
        )
        print("   " + str(workstation_compilers.versions(stations["old"], ["gcc", "gcc-12"])))
        say(f"slow: limited to {SLOW_CPU_SHARE:.0%} of one CPU with a cgroup")
        stations["slow"].throttle(SLOW_CPU_SHARE)
        say("starting p2pcc daemon on each (each starts its own distccd)")
        daemons = {
            name: Daemon(ws, home / name, key_file=key, own_cache=True)
            for name, ws in stations.items()
        }
        for daemon in daemons.values():
            daemon.start()
        client = daemons["client"]
        wait_until(lambda: len(client.peers_by_name()) == 3, 60, "the client to see three peers")
        say("waiting for each workstation to measure its own speed (the slow one takes a while)")
        wait_until(
            lambda: all("power index" in daemon.log_text() for daemon in daemons.values()),
            240,
            "every daemon's calibration",
        )
        for name, peer in client.peers_by_name().items():
            print(f"   {name:5} power {peer['power']:.2f}")
        links = home / "links"
        say(f"installing the compiler links on client into {links}")
        print(p2pcc(stations["client"], client, "install-links", str(links)).rstrip())
        say("downloading brotli's sources (PyPI sdist, cached) and writing a Makefile")
        tree = project.unpack(project.BROTLI, home / "brotli")
        env = dict(os.environ, PATH=f"{links}:{os.environ['PATH']}")
        env["DISTCC_DIR"] = str(home / "distcc")
        say("what the pool looks like from the client")
        print(p2pcc(stations["client"], client, "status", env=env).rstrip())
        say("building: p2pcc build make   (the links first in PATH, -j from the table)")
        started = time.monotonic()
        build = stations["client"].run(
            [
                sys.executable,
                "-m",
                "p2pcc",
                "build",
                "--config",
                str(client.config_path),
                "make",
                "-C",
                str(tree.path),
                "CC=gcc",
            ],
            env=env,
            timeout=600,
            check=False,
        )
        elapsed = time.monotonic() - started
        if build.returncode != 0:
            print(build.stdout[-3000:], build.stderr[-3000:])
            raise SystemExit(f"the build failed with status {build.returncode}")
        say(f"built {len(tree.sources)} objects in {elapsed:.1f} s")
        counts = jobs_per_workstation(daemons)
        local = len(tree.sources) - sum(counts.values())
        for name in NAMES[1:]:
            print(f"   compiled on {name:5}: {counts[name]:3}")
        print(f"   compiled on client itself: {max(0, local)}")
        if counts["old"]:
            raise SystemExit("the gcc-11 workstation got jobs: that would be a wrong build")
        print("   the gcc-11 workstation got none, as it must")


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("the demo makes network namespaces: run it as root (sudo scripts/demo)")
    home = Path(tempfile.mkdtemp(prefix="p2pcc-demo-"))
    home.chmod(0o755)
    try:
        run_demo(home)
    except KeyboardInterrupt:
        print("\ninterrupted: tearing everything down")
    finally:
        shutil.rmtree(home, ignore_errors=True)
        print("demo finished; every namespace and process is gone", flush=True)


if __name__ == "__main__":
    main()
