"""The build trace recorder against real distcc clients and a real distccd on loopback.

A shell stands for the build tool: its pid is the recorder's root.  Under it run three
`distcc gcc -c` sent to the loopback distccd (DISTCC_FALLBACK=0: a local fallback would
fail) and one with DISTCC_HOSTS=localhost; beside it, in the same DISTCC_DIR, a compile
of another build, which must not appear.  The sources take a good fraction of a second
to compile, so a 20 ms poll cannot miss one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import trio

from p2pcc.build_trace.recorder import TraceRecorder, write_trace
from tests.build_trace.trace_format import check_trace_event_format
from tests.wrapper.loopback import loopback_distccd

pytestmark = pytest.mark.integration

REMOTE_FILES = ("alpha.c", "beta.c", "gamma.c")
LOCAL_FILE = "local.c"
OTHER_FILE = "other.c"


def slow_source(seed: int) -> str:
    """A C file gcc -O2 takes a few tenths of a second over."""
    body = "".join(
        f"double f{seed}_{k}(double *v, int n) {{ double s = {k}; "
        f"for (int i = 0; i < n; i++) s += v[i] * v[(i * {k + 3}) % n] / (1.0 + s); "
        "return s; }\n"
        for k in range(300)
    )
    return "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n" + body


async def test_one_span_per_compile_of_the_build_on_the_right_host(shared_tmp: Path) -> None:
    if not shutil.which("gcc"):
        pytest.skip("needs gcc")
    work = shared_tmp / "work"
    work.mkdir()
    for seed, name in enumerate((*REMOTE_FILES, LOCAL_FILE, OTHER_FILE)):
        (work / name).write_text(slow_source(seed))
    distcc_dir = shared_tmp / "distcc-dir"
    distcc_dir.mkdir()
    with loopback_distccd(shared_tmp) as distccd:
        env = {
            "PATH": "/usr/bin:/bin",
            "LC_ALL": "C",
            "HOME": str(shared_tmp),
            "DISTCC_DIR": str(distcc_dir),
            "DISTCC_FALLBACK": "0",
            "DISTCC_HOSTS": distccd.host,
        }
        compiles = [f"distcc gcc -O2 -c {name} -o {name}.o" for name in REMOTE_FILES]
        compiles.append(f"DISTCC_HOSTS=localhost distcc gcc -O2 -c {LOCAL_FILE} -o l.o")
        script = "".join(f'{line} & pids="$pids $!"\n' for line in compiles)
        script += 'for pid in $pids; do wait "$pid" || exit 1; done\n'
        other = ["distcc", "gcc", "-O2", "-c", OTHER_FILE, "-o", "other.o"]
        document, codes = await record(distcc_dir, work, env, ["sh", "-ec", script], other)
        assert codes == (0, 0)
        assert len(distccd.wait_for_jobs(4)) == 4  # the other build went there too
    write_trace(shared_tmp / "trace.json", document)
    document = json.loads((shared_tmp / "trace.json").read_text())
    check_trace_event_format(document)
    spans = [event for event in document["traceEvents"] if event["ph"] == "X"]
    remote_host = "127.0.0.1"  # distcc names the host without its port
    assert sorted((s["name"], s["args"]["host"], s["cat"]) for s in spans) == sorted(
        [(name, remote_host, "remote") for name in REMOTE_FILES]
        + [(LOCAL_FILE, "localhost", "local")]
    )
    for span in spans:
        assert span["dur"] > 0
        assert span["args"]["waited_for_slot_s"] >= 0
        assert span["args"]["phases_s"]["Compile"] > 0
    threads = {
        (e["pid"], e["args"]["name"])
        for e in document["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    assert {name for _, name in threads} == {remote_host, "localhost"}
    assert len({pid for pid, _ in threads}) == 2


async def record(
    distcc_dir: Path, work: Path, env: dict[str, str], build: list[str], other: list[str]
) -> tuple[dict[str, object], tuple[int, int]]:
    """Run `build` under a recorder rooted at it and `other` beside it; the document
    once both ended, after one more poll, and their exit codes."""
    processes: list[trio.Process] = []
    try:
        with trio.fail_after(120):
            builder = await trio.lowlevel.open_process(build, cwd=work, env=env)
            processes.append(builder)
            recorder = TraceRecorder(distcc_dir, builder.pid, lambda: 2, period=0.02)
            async with trio.open_nursery() as nursery:
                await nursery.start(recorder.run)
                outsider = await trio.lowlevel.open_process(other, cwd=work, env=env)
                processes.append(outsider)
                codes = (await builder.wait(), await outsider.wait())
                await trio.sleep(0.1)  # the polls that miss the last compiles
                nursery.cancel_scope.cancel()
            return recorder.document(trio.current_time()), codes
    finally:
        for process in processes:
            if process.returncode is None:
                kill_tree(process.pid)
                process.kill()


def kill_tree(pid: int) -> None:
    """Kill the children (distcc, gcc) of a process we started, by pid."""
    children = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    for child in children:
        kill_tree(int(child))
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(child), signal.SIGKILL)
