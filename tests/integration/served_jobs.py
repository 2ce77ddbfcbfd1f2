"""Long peer jobs on a serving workstation, for the hand-back test and benchmark.

A small project of generated C files that each take `gcc -O2` a few seconds, built on a
client with real distcc sent to one server only (`DISTCC_HOSTS=SERVER/N`, no
localhost: a file compiled at the client is one distcc fell back on), with distcc's
defaults otherwise (DISTCC_FALLBACK on).  The workstations share one kernel and one
pid namespace, so the test reads both sides' processes from here: the server's jobs
are the processes of its distccd's session that are not distccd; the client's local
compiles are the `cc1` processes of the build's session that do not preprocess (`-E`:
distcc preprocesses every file at the client before sending it).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from p2pcc.core.hand_back import job_processes
from p2pcc.core.procfs import ProcessEntry, session_members
from p2pcc.daemon.distccd.processes import read_processes
from tests.integration.pool import Daemon
from tests.integration.test_turnaround import job_source

#: Functions per generated file: about 0.4 s of `gcc -O2` per 60 on the test machine, so
#: several seconds a file even alone.
FUNCTIONS = 600


def write_project(directory: Path, files: int, functions: int = FUNCTIONS) -> list[str]:
    """`files` generated C sources and a Makefile building their objects with $(CC)
    -O2; the object names."""
    directory.mkdir(parents=True, exist_ok=True)
    objects = []
    for index in range(files):
        text = f"int marker_{index} = {index};\n" + job_source(functions)
        (directory / f"s{index}.c").write_text(text)
        objects.append(f"s{index}.o")
    (directory / "Makefile").write_text(
        f"CFLAGS = -O2\nall: {' '.join(objects)}\n%.o: %.c\n\t$(CC) $(CFLAGS) -c $< -o $@\n"
    )
    return objects


def build_env(server: Daemon, slots: int, distcc_dir: Path) -> dict[str, str]:
    """The environment of a build whose every job goes to `server`, with distcc's
    defaults otherwise (DISTCC_FALLBACK on) and a fresh, existing DISTCC_DIR."""
    distcc_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISTCC_", "MAKE", "P2PCC_"))}
    env |= {"DISTCC_HOSTS": f"{server.ws.address}/{slots}", "DISTCC_DIR": str(distcc_dir)}
    return env


def start_build(
    client: Daemon, server: Daemon, directory: Path, slots: int, tag: str
) -> subprocess.Popen[Any]:
    """`make -jSLOTS CC='distcc gcc'` in `directory` on `client`, every job to
    `server`; its output goes to `directory/make-TAG.log`.  The process's pid is the
    build's session."""
    env = build_env(server, slots, directory / f"distcc-{tag}")
    with (directory / f"make-{tag}.log").open("w") as log:
        return client.ws.start(
            # -C: nsenter starts the command at the root of the mount namespace.
            ["make", "-C", str(directory), f"-j{slots}", "CC=distcc gcc"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def compile_locally(directory: Path, reference: Path, objects: list[str]) -> None:
    """The objects of `directory`'s sources compiled here with plain gcc, into `reference`."""
    reference.mkdir(parents=True, exist_ok=True)
    for name in objects:
        source = directory / name.replace(".o", ".c")
        subprocess.run(
            ["gcc", "-O2", "-c", str(source), "-o", str(reference / name)], check=True, timeout=300
        )


def distccd_session(daemon: Daemon) -> int:
    """The session of `daemon`'s distccd (its main process's pid)."""
    return int((daemon.runtime_dir / "distccd" / "distccd.pid").read_text().split()[0])


def served_jobs(session: int, processes: list[ProcessEntry] | None = None) -> list[ProcessEntry]:
    """The job processes in distccd's `session` now."""
    return job_processes(session_members(_or_now(processes), session))


def local_compiles(build_session: int, processes: list[ProcessEntry] | None = None) -> list[int]:
    """Pids of the client build's `cc1` processes that compile (not only preprocess)."""
    members = session_members(_or_now(processes), build_session)
    return [e.pid for e in members if e.comm == "cc1" and "-E" not in _argv(e.pid)]


def _or_now(processes: list[ProcessEntry] | None) -> list[ProcessEntry]:
    return read_processes() if processes is None else processes


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return ["-E"]  # it ended: count it as nothing


def differing_objects(built: Path, reference: Path, objects: list[str]) -> list[str]:
    """The objects of `objects` whose bytes differ between the two directories (or are
    missing from `built`)."""
    return [
        name
        for name in objects
        if not (built / name).exists()
        or (built / name).read_bytes() != (reference / name).read_bytes()
    ]


def counters(daemon: Daemon) -> Mapping[str, Any]:
    status = daemon.status()
    return {} if status is None else dict(status["counters"])
