"""`p2pcc build`: -j where it belongs, the links first on PATH, the build's exit status;
a real make of three files through the links to a loopback distccd."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcc import cli, statefile
from p2pcc.cli.build_cmd import live_style, plan_build, pool_jobs
from p2pcc.cli.hosts_cmd import local_cpus
from p2pcc.core.errors import P2pccError
from p2pcc.core.jobserver import Style
from p2pcc.wrapper.main import Table
from tests.build_trace.trace_format import check_trace_event_format
from tests.wrapper.loopback import loopback_distccd, write_real_state

LINKS = Path("/opt/links")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["make"], ["make", "-j7"]),
        (["make", "all", "V=1"], ["make", "-j7", "all", "V=1"]),
        (["gmake", "-C", "src"], ["gmake", "-j7", "-C", "src"]),
        (["make", "-Cjdir"], ["make", "-j7", "-Cjdir"]),  # -C's value, not a -j
        (["make", "-C", "-j"], ["make", "-j7", "-C", "-j"]),
        (["make", "-j4"], ["make", "-j4"]),
        (["make", "-j", "4"], ["make", "-j", "4"]),
        (["make", "-j"], ["make", "-j"]),  # unlimited, as the user asked
        (["make", "-kj3"], ["make", "-kj3"]),
        (["make", "--jobs=2"], ["make", "--jobs=2"]),
        (["make", "--jobs"], ["make", "--jobs"]),
        (["/usr/bin/make", "install"], ["/usr/bin/make", "-j7", "install"]),
        (["ninja"], ["ninja", "-j7"]),
        (["ninja", "-C", "build"], ["ninja", "-j7", "-C", "build"]),
        (["ninja", "-j2", "-C", "build"], ["ninja", "-j2", "-C", "build"]),
        (["ninja", "-vj2"], ["ninja", "-vj2"]),
        (["./build.sh", "-j"], ["./build.sh", "-j"]),  # not ours to change
    ],
)
def test_jobs_go_on_make_and_ninja_command_lines(command: list[str], expected: list[str]) -> None:
    argv, _ = plan_build(command, {"PATH": "/usr/bin"}, 7, LINKS)
    assert argv == expected


def test_links_go_first_on_path_once() -> None:
    _, env = plan_build(["make"], {"PATH": f"/usr/bin:{LINKS}:/bin"}, 2, LINKS)
    assert env["PATH"] == f"{LINKS}:/usr/bin:/bin"
    _, env = plan_build(["make"], {"PATH": "/usr/bin"}, 2, None)
    assert env["PATH"] == "/usr/bin"  # no links installed: PATH as it was


def test_other_commands_get_jobs_through_the_environment() -> None:
    argv, env = plan_build(["cmake", "--build", "out"], {"PATH": "/bin"}, 5, LINKS)
    assert argv == ["cmake", "--build", "out"]
    assert env["MAKEFLAGS"] == "-j5"
    assert env["CMAKE_BUILD_PARALLEL_LEVEL"] == "5"
    _, env = plan_build(
        ["./build.sh"],
        {"PATH": "/bin", "MAKEFLAGS": "k", "CMAKE_BUILD_PARALLEL_LEVEL": "3"},
        5,
        LINKS,
    )
    assert env["MAKEFLAGS"] == "k -j5"
    assert env["CMAKE_BUILD_PARALLEL_LEVEL"] == "3"  # the user's own setting stays


@pytest.mark.parametrize(
    "makeflags", ["-j8", " --jobserver-auth=fifo:/tmp/x -j", "k --jobs=3", "--jobserver-fds=3,4"]
)
def test_a_make_inside_a_parallel_make_gets_no_second_j(makeflags: str) -> None:
    argv, env = plan_build(["make"], {"PATH": "/bin", "MAKEFLAGS": makeflags}, 5, LINKS)
    assert argv == ["make"]
    _, env = plan_build(["sh", "x"], {"PATH": "/bin", "MAKEFLAGS": makeflags}, 5, LINKS)
    assert env["MAKEFLAGS"] == makeflags


@pytest.mark.parametrize(
    ("command", "makeflags", "live"),
    [
        (["make"], "", True),
        (["make", "-C", "src", "all"], "", True),
        (["gmake"], "", True),  # Debian links gmake to GNU make
        (["make", "-j4"], "", False),  # the user's -j wins
        (["make", "--jobs=2"], "", False),
        (["make"], " -j4 --jobserver-auth=3,4", False),  # inside a parallel make: its own
        (["make"], "k", True),
        (["/nonexistent/make"], "", False),  # not found: no GNU make to steer
        (["ninja"], "", False),  # no jobserver client: a fixed -j
        (["sh", "-c", "make"], "", False),
    ],
)
def test_only_a_gnu_make_without_a_j_gets_a_live_one(
    command: list[str], makeflags: str, live: bool
) -> None:
    env = {"PATH": "/usr/bin:/bin", "MAKEFLAGS": makeflags}
    assert (live_style(command, env) is Style.PIPE) is live  # this machine's make 4.3


def test_a_live_make_gets_the_jobserver_in_makeflags_not_a_j() -> None:
    env = {"PATH": "/usr/bin", "MAKEFLAGS": "k"}
    argv, build_env = plan_build(["make", "all"], env, 7, LINKS, jobserver_auth="5,6")
    assert argv == ["make", "all"]
    assert build_env["MAKEFLAGS"] == "k -j --jobserver-auth=5,6"
    assert build_env["PATH"] == f"{LINKS}:/usr/bin"


def test_the_pool_takes_the_tables_jobs_or_this_machines_cpus() -> None:
    table = Table()
    table.jobs = 9
    assert pool_jobs(lambda: table) == 9
    assert pool_jobs(lambda: Table("the p2pcc daemon is not running", down=True)) == local_cpus()
    table.jobs = 0  # a line with no slot yet
    assert pool_jobs(lambda: table) == local_cpus()

    def broken() -> Table:
        raise P2pccError("no gcc on PATH")

    assert pool_jobs(broken) == local_cpus()


def test_no_command_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["build"]) == 1
    assert "no build command given" in capsys.readouterr().err


MAKEFILE = """\
OBJS = one.o two.o three.o
prog: $(OBJS)
\t$(CC) -o $@ $(OBJS)
%.o: %.c
\t$(CC) -O2 -c $< -o $@
"""

SOURCES = {
    "one.c": "int two(void); int three(void);\nint main(void) { return two() + three() - 5; }\n",
    "two.c": "int two(void) { return 2; }\n",
    "three.c": "int three(void) { return 3; }\n",
}


@pytest.fixture
def project() -> Iterator[Path]:
    """Three C files and a Makefile, links installed, in a directory distccd can reach."""
    if not shutil.which("make") or not shutil.which("cc"):
        pytest.skip("needs make and cc")
    root = Path(tempfile.mkdtemp(prefix="p2pcc-build-test-"))
    root.chmod(0o755)
    try:
        (root / "src").mkdir()
        (root / "src" / "Makefile").write_text(MAKEFILE)
        for name, text in SOURCES.items():
            (root / "src" / name).write_text(text)
        (root / "run").mkdir()
        (root / "p2pcc.toml").write_text(
            f'runtime_dir = "{root / "run"}"\n[wrapper]\nstate_max_age = 3600.0\n'
        )
        saved = os.environ["PATH"]
        os.environ["PATH"] = "/usr/bin:/bin"
        try:
            args = ["install-links", str(root / "links"), "--config", str(root / "p2pcc.toml")]
            assert cli.main(args) == 0
        finally:
            os.environ["PATH"] = saved
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def build(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """`p2pcc build` in a fresh process and session (its own build for the warnings)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(root),
        "LC_ALL": "C",
        "XDG_RUNTIME_DIR": str(root),
        "P2PCC_CACHE_DIR": str(root / "cache"),
        "DISTCC_DIR": str(root / "distcc-dir"),
        "DISTCC_FALLBACK": "0",
    }
    prefix = [sys.executable, "-m", "p2pcc", "build", "--config", str(root / "p2pcc.toml")]
    return subprocess.run(
        ["timeout", "120", *prefix, "--links", str(root / "links"), *command],
        cwd=root / "src",
        env=env,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,
    )


def test_make_builds_through_the_links_on_a_loopback_peer(project: Path) -> None:
    with loopback_distccd(project) as distccd:
        env = {"PATH": "/usr/bin:/bin", "P2PCC_CACHE_DIR": str(project / "cache")}
        write_real_state(project / "run" / statefile.FILE_NAME, distccd.host, env)
        done = build(project, "make")
        assert done.returncode == 0, done.stderr
        jobs = distccd.wait_for_jobs(3)
    assert sorted(line.rsplit(" ", 1)[1] for line in jobs) == ["one.c", "three.c", "two.c"]
    assert subprocess.run([project / "src" / "prog"], check=False).returncode == 0
    assert "p2pcc:" not in done.stderr


def heavier(name: str, functions: int = 300) -> str:
    """A source that takes a good part of a second at -O2: the trace's 50 ms polls see
    its remote phase even on a loaded machine (a one-line file's lasts ~35 ms)."""
    body = "".join(
        f"int {name}_{n}(int x) {{ int s = 0; for (int i = 0; i < x; i++) s += i * {n} % 7;"
        f" return s; }}\n"
        for n in range(functions)
    )
    return body


def test_a_traced_build_has_one_span_per_compile_on_its_hosts_track(project: Path) -> None:
    trace = project / "trace.json"
    for name in SOURCES:
        source = project / "src" / name
        source.write_text(source.read_text() + heavier(name.removesuffix(".c")))
    with loopback_distccd(project) as distccd:
        env = {"PATH": "/usr/bin:/bin", "P2PCC_CACHE_DIR": str(project / "cache")}
        write_real_state(project / "run" / statefile.FILE_NAME, distccd.host, env)
        done = build(project, "--trace", str(trace), "make")
        assert done.returncode == 0, done.stderr
    assert f"p2pcc: the build's trace is in {trace}" in done.stderr
    document = json.loads(trace.read_text())
    check_trace_event_format(document)
    spans = [e for e in document["traceEvents"] if e["ph"] == "X"]
    assert sorted(e["args"]["file"].rsplit("/", 1)[-1] for e in spans) == [
        "one.c",
        "three.c",
        "two.c",
    ]
    hosts = {
        e["pid"]: e["args"]["name"] for e in document["traceEvents"] if e["name"] == "process_name"
    }
    # DISTCC_FALLBACK=0 and one remote host: every compile went there (a tiny one may
    # finish before a poll sees its host named).
    address = distccd.host.split(":")[0]
    assert {hosts[e["pid"]] for e in spans} <= {address, "(host not seen)"}
    assert any(hosts[e["pid"]] == address and e["args"]["where"] == "remote" for e in spans)


def test_a_traced_build_of_another_tool_runs_as_a_child_and_keeps_its_status(
    project: Path,
) -> None:
    trace = project / "trace.json"
    done = build(project, "--trace", str(trace), "sh", "-c", "exit 3")
    assert done.returncode == 3
    check_trace_event_format(json.loads(trace.read_text()))


def test_a_failing_build_exits_with_makes_status(project: Path) -> None:
    (project / "src" / "two.c").write_text("int two(void) { return undeclared; }\n")
    done = build(project, "make", "-k")
    assert done.returncode == 2  # make's own status for a failed recipe
    assert "undeclared" in done.stderr
    done = build(project, "sh", "-c", "exit 42")
    assert done.returncode == 42


def test_with_the_daemon_down_the_build_runs_locally_and_says_so_once(project: Path) -> None:
    done = build(project, "make")
    assert done.returncode == 0, done.stderr
    assert (project / "src" / "prog").exists()
    notes = [line for line in done.stderr.splitlines() if line.startswith("p2pcc:")]
    assert len(notes) == 1
    assert "the p2pcc daemon is not running" in notes[0]
    assert "building locally with -j" in notes[0]


def test_a_verbose_live_build_says_the_pools_jobs(project: Path) -> None:
    done = build(project, "-v", "make")
    assert done.returncode == 0, done.stderr
    assert (project / "src" / "prog").exists()
    said = [line for line in done.stderr.splitlines() if "the pool takes" in line]
    assert said == [f"p2pcc: the pool takes {local_cpus()} cc job(s) at once now"]


def test_missing_links_still_build(project: Path) -> None:
    shutil.rmtree(project / "links")
    done = build(project, "make")
    assert done.returncode == 0, done.stderr
    assert "no p2pcc links in" in done.stderr


def test_a_command_that_does_not_exist_exits_127(project: Path) -> None:
    done = build(project, "no-such-build-tool")
    assert done.returncode == 127
    assert "cannot run no-such-build-tool" in done.stderr


def test_links_made_with_other_settings_are_pointed_out(project: Path) -> None:
    assert "other settings" not in build(project, "true").stderr
    config = project / "p2pcc.toml"
    config.write_text(config.read_text().replace("3600.0", "60.0"))
    done = build(project, "true")
    assert done.returncode == 0
    assert f"`p2pcc install-links {project / 'links'}` refreshes them" in done.stderr
