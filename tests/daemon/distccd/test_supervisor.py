"""The distccd supervisor against a real distccd on 127.0.0.1 and a free port."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio

from p2pcc.compilers.probe import lookup
from p2pcc.config.model import DistccdConfig
from p2pcc.core import limits
from p2pcc.core.distccd_args import distccd_argv
from p2pcc.core.errors import P2pccError
from p2pcc.core.procfs import ProcessEntry, session_members
from p2pcc.daemon.distccd.processes import read_processes
from p2pcc.daemon.distccd.supervisor import (
    DistccdState,
    SupervisorTiming,
    check_whitelist,
    distccd_log_file,
    interface_addresses,
    read_whitelist,
    serve_distccd,
)

pytestmark = [pytest.mark.integration]

if not (shutil.which("distccd") and shutil.which("distcc")):
    pytest.skip("distcc is not installed", allow_module_level=True)
if os.geteuid() == 0:
    try:
        pwd.getpwnam("distccd")
    except KeyError:
        pytest.skip("running as root needs the user distccd", allow_module_level=True)

FAST = SupervisorTiming(
    backoff_initial=0.1,
    backoff_max=0.5,
    reset_after=60.0,
    start_timeout=10.0,
    drain_timeout=30.0,
    term_timeout=3.0,
    poll_interval=0.05,
    check_interval=0.1,
)

#: A C++ file whose compilation takes a while: constant evaluation of a long loop.
SLOW_SOURCE = """
constexpr unsigned long long spin(unsigned long long n) {
    unsigned long long x = 0;
    for (unsigned long long i = 0; i < n; ++i) x = x * 6364136223846793005ULL + i;
    return x;
}
constexpr unsigned long long value = spin(%dULL);
unsigned long long get() { return value; }
"""
SLOW_FLAGS = ["-std=c++20", "-fconstexpr-ops-limit=4000000000", "-fconstexpr-loop-limit=2000000000"]


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not tmp_path: pytest's base directory is private to root, and distccd, once it
    # has dropped to its user, must reach its log directory.
    path = Path(tempfile.mkdtemp(prefix="p2pcc-distccd-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config(port: int, *, manage: bool = True, user: str = "distccd") -> DistccdConfig:
    return DistccdConfig(
        manage=manage, port=port, allow=(), allow_stock_clients=(), jobs=2, nice=10, user=user
    )


class ServingEvents:
    """The on_serving callback, as a channel the test can wait on."""

    def __init__(self) -> None:
        self.send, self.receive = trio.open_memory_channel[bool](math.inf)
        self.seen: list[bool] = []

    def __call__(self, serving: bool) -> None:
        self.seen.append(serving)
        self.send.send_nowait(serving)

    async def next(self) -> bool:
        return await self.receive.receive()


def supervisor(port: int, workdir: Path, events: ServingEvents, **options: object) -> partial[None]:
    options.setdefault("timing", FAST)
    return partial(
        serve_distccd,
        options.pop("config", config(port)),
        listen="127.0.0.1",
        interface="lo",
        log_file=distccd_log_file(workdir),
        on_serving=events,
        **options,
    )


def alive(session: int) -> list[ProcessEntry]:
    return session_members(read_processes(), session)


def distccds_on(port: int) -> list[int]:
    """Live processes started with our port on their command line."""
    needle = f"\0--port\0{port}\0".encode()
    found = []
    for stat in read_processes():
        try:
            cmdline = Path(f"/proc/{stat.pid}/cmdline").read_bytes()
        except OSError:
            continue
        if stat.state != "Z" and needle in b"\0" + cmdline:
            found.append(stat.pid)
    return found


def proc_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split()[1]
    raise AssertionError(f"{name} not in /proc/{pid}/status")


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[16])


async def compile_remotely(
    workdir: Path, port: int, name: str, source: str, flags: list[str]
) -> subprocess.CompletedProcess[bytes]:
    distcc_dir = workdir / f"distcc-{name}"
    distcc_dir.mkdir()  # without it, distcc silently compiles locally
    src = workdir / f"{name}.cc"
    src.write_text(source)
    env = {
        **os.environ,
        "DISTCC_HOSTS": f"127.0.0.1:{port}/1",
        "DISTCC_DIR": str(distcc_dir),
        "DISTCC_FALLBACK": "0",  # a job that does not go remote fails instead
    }
    command = ["timeout", "30", "distcc", "g++", *flags, "-c", str(src), "-o", f"{src}.o"]
    return await trio.run_process(command, env=env, check=False, capture_stderr=True)


async def wait_for_jobs(state: DistccdState) -> None:
    while state.running_jobs() == 0:
        await trio.sleep(0.02)


async def test_serves_a_real_compile_and_leaves_nothing_behind(workdir: Path, port: int) -> None:
    events = ServingEvents()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            state = await nursery.start(supervisor(port, workdir, events))
            assert (state.serving, events.seen) == (True, [True])
            session = state.pid
            assert session is not None
            cmdline = Path(f"/proc/{session}/cmdline").read_bytes().split(b"\0")
            allowed = [cmdline[i + 1] for i, arg in enumerate(cmdline) if arg == b"--allow"]
            assert allowed[0] == b"127.0.0.0/8"  # lo's subnets
            assert set(allowed) <= {b"127.0.0.0/8", b"::1/128"}
            assert niceness(session) == 10
            if os.geteuid() == 0:
                assert int(proc_field(session, "Uid")) == pwd.getpwnam("distccd").pw_uid
            result = await compile_remotely(workdir, port, "hello", "int f() { return 42; }", [])
            assert result.returncode == 0, result.stderr
            assert (workdir / "hello.cc.o").stat().st_size > 0
            log_file = distccd_log_file(workdir)
            while "COMPILE_OK" not in log_file.read_text():  # the job summary comes last
                await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
    assert events.seen == [True, False]
    assert state.pid is None
    assert alive(session) == []
    assert distccds_on(port) == []


async def test_restarts_distccd_after_it_is_killed(workdir: Path, port: int) -> None:
    events = ServingEvents()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            state = await nursery.start(supervisor(port, workdir, events))
            first = state.pid
            assert first is not None
            assert len(alive(first)) > 1
            os.kill(first, signal.SIGKILL)
            assert await events.next() is True
            assert await events.next() is False
            assert await events.next() is True
            second = state.pid
            assert second is not None
            assert second != first
            assert alive(first) == []  # its orphaned children were killed too
            nursery.cancel_scope.cancel()
    assert events.seen == [True, False, True, False]
    assert alive(second) == []
    assert distccds_on(port) == []


async def test_a_crash_next_to_the_supervisor_leaves_no_distccd(workdir: Path, port: int) -> None:
    events = ServingEvents()
    sessions = []
    with trio.fail_after(30), pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="boom")):
        async with trio.open_nursery() as nursery:
            state = await nursery.start(supervisor(port, workdir, events))
            sessions.append(state.pid)
            raise RuntimeError("boom")
    assert sessions[0] is not None
    assert alive(sessions[0]) == []
    assert distccds_on(port) == []


async def test_stop_lets_a_running_job_finish(workdir: Path, port: int) -> None:
    events = ServingEvents()
    results: list[subprocess.CompletedProcess[bytes]] = []

    async def client() -> None:
        source = SLOW_SOURCE % 400_000
        results.append(await compile_remotely(workdir, port, "slow", source, SLOW_FLAGS))

    with trio.fail_after(60):
        async with trio.open_nursery() as clients:
            async with trio.open_nursery() as daemons:
                state = await daemons.start(supervisor(port, workdir, events))
                session = state.pid
                clients.start_soon(client)
                await wait_for_jobs(state)
                daemons.cancel_scope.cancel()
            assert events.seen == [True, False]
            assert alive(session) == []
    assert results[0].returncode == 0, results[0].stderr
    assert (workdir / "slow.cc.o").stat().st_size > 0


async def test_stop_does_not_wait_forever_for_a_job(workdir: Path, port: int) -> None:
    events = ServingEvents()
    results: list[subprocess.CompletedProcess[bytes]] = []

    async def client() -> None:
        source = SLOW_SOURCE % 20_000_000  # minutes of work, were it not killed
        results.append(await compile_remotely(workdir, port, "endless", source, SLOW_FLAGS))

    impatient = dataclasses.replace(FAST, drain_timeout=0.3)
    with trio.fail_after(30):
        async with trio.open_nursery() as clients:
            async with trio.open_nursery() as daemons:
                state = await daemons.start(supervisor(port, workdir, events, timing=impatient))
                session = state.pid
                clients.start_soon(client)
                await wait_for_jobs(state)
                daemons.cancel_scope.cancel()
            assert alive(session) == []  # the compiler (its own process group) too
    assert results[0].returncode != 0


async def test_kills_a_distccd_left_by_an_earlier_run(workdir: Path, port: int) -> None:
    log_file = distccd_log_file(workdir)
    log_file.parent.mkdir()
    if os.geteuid() == 0:
        distccd_user = pwd.getpwnam("distccd")
        os.chown(log_file.parent, distccd_user.pw_uid, distccd_user.pw_gid)
    argv = distccd_argv(
        "distccd",
        listen="127.0.0.1",
        port=port,
        allow=(ipaddress.ip_network("127.0.0.0/8"),),
        jobs=1,
        nice=10,
        log_file=str(log_file),
        pid_file=str(log_file.parent / "distccd.pid"),
        user="distccd" if os.geteuid() == 0 else None,
    )
    orphan = subprocess.Popen(argv, start_new_session=True)
    events = ServingEvents()
    try:
        with trio.fail_after(30):
            while not (log_file.parent / "distccd.pid").exists() or not distccds_on(port):
                await trio.sleep(0.02)
            async with trio.open_nursery() as nursery:
                state = await nursery.start(supervisor(port, workdir, events))
                assert state.serving is True
                assert state.pid != orphan.pid
                assert orphan.wait() == -signal.SIGKILL
                assert alive(orphan.pid) == []
                nursery.cancel_scope.cancel()
    finally:
        if orphan.poll() is None:
            os.killpg(orphan.pid, signal.SIGKILL)
            orphan.wait()
    assert distccds_on(port) == []


async def test_a_taken_port_is_explained(
    workdir: Path, port: int, caplog: pytest.LogCaptureFixture
) -> None:
    events = ServingEvents()
    with trio.fail_after(10), socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        async with trio.open_nursery() as nursery:
            state = await nursery.start(supervisor(port, workdir, events))
            assert (state.serving, events.seen) == (False, [False])
            nursery.cancel_scope.cancel()
    assert (
        "did not start listening, status 102: could not listen on its port (another distccd"
        in caplog.text
    )
    assert f"bind of 127.0.0.1:{port} failed: Address already in use" in caplog.text
    assert distccds_on(port) == []


async def test_a_big_log_is_set_aside_at_start(workdir: Path, port: int) -> None:
    log_file = distccd_log_file(workdir)
    log_file.parent.mkdir()
    with log_file.open("wb") as file:
        file.truncate(limits.DISTCCD_LOG_ROTATE_BYTES + 1)  # sparse: costs no disk
    events = ServingEvents()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor(port, workdir, events))
            nursery.cancel_scope.cancel()
    old = log_file.with_name("distccd.log.1")
    assert old.stat().st_size == limits.DISTCCD_LOG_ROTATE_BYTES + 1
    assert 0 < log_file.stat().st_size < 64 * 1024
    assert "preforking daemon started" in log_file.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands files over to distccd's user")
async def test_a_planted_link_is_removed_not_followed(workdir: Path, port: int) -> None:
    precious = workdir / "precious"
    precious.write_text("root's secret")
    log_file = distccd_log_file(workdir)
    log_file.parent.mkdir()
    log_file.symlink_to(precious)  # as distccd's user could, between two runs
    events = ServingEvents()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor(port, workdir, events))
            nursery.cancel_scope.cancel()
    assert precious.stat().st_uid == 0
    assert precious.read_text() == "root's secret"
    assert not log_file.is_symlink()
    assert log_file.stat().st_uid == pwd.getpwnam("distccd").pw_uid


async def test_masquerade_directories_are_kept_off_distccds_path(workdir: Path, port: int) -> None:
    masquerade = workdir / "masq"
    masquerade.mkdir()
    (masquerade / "gcc").symlink_to(shutil.which("distcc") or "/usr/bin/distcc")
    wrapper = workdir / "wrapper"
    env = {**os.environ, "PATH": f"{masquerade}:{wrapper}:{os.environ['PATH']}"}
    events = ServingEvents()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            options = {"env": env, "exclude_path_dirs": [str(wrapper)]}
            state = await nursery.start(supervisor(port, workdir, events, **options))
            environ = Path(f"/proc/{state.pid}/environ").read_bytes().split(b"\0")
            path = next(v for v in environ if v.startswith(b"PATH=")).decode()[5:].split(":")
            assert str(masquerade) not in path
            assert str(wrapper) not in path
            assert "/usr/bin" in path
            nursery.cancel_scope.cancel()


async def test_an_interface_without_addresses_means_not_serving(workdir: Path, port: int) -> None:
    events = ServingEvents()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            start = supervisor(port, workdir, events)
            state = await nursery.start(partial(start, interface="p2pccnone0"))
            assert (state.serving, state.pid, events.seen) == (False, None, [False])
            nursery.cancel_scope.cancel()
    assert distccds_on(port) == []


async def test_unmanaged_reports_whether_something_listens(workdir: Path, port: int) -> None:
    events = ServingEvents()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            unmanaged = config(port, manage=False)
            state = await nursery.start(supervisor(port, workdir, events, config=unmanaged))
            assert (state.serving, events.seen) == (False, [False])
            with socket.socket() as listener:
                listener.bind(("127.0.0.1", port))
                listener.listen()
                assert await events.next() is False
                assert await events.next() is True
            assert await events.next() is False
            nursery.cancel_scope.cancel()
    assert not (workdir / "distccd").exists()  # nothing was started or prepared


async def test_what_no_restart_can_fix_is_an_error(workdir: Path, port: int) -> None:
    events = ServingEvents()
    with pytest.raises(P2pccError, match="was not found on PATH: install distcc"):
        await supervisor(port, workdir, events, binary="p2pcc-no-such-distccd")()
    with pytest.raises(P2pccError, match="is not an IP address"):
        await partial(supervisor(port, workdir, events), listen="localhost")()
    if os.geteuid() == 0:
        nobody = config(port, user="p2pcc-no-such-user")
        with pytest.raises(P2pccError, match=r"'p2pcc-no-such-user' .* does not exist"):
            await supervisor(port, workdir, events, config=nobody)()
    assert events.seen == []


def test_read_whitelist_keeps_entries_that_lead_to_an_executable(tmp_path: Path) -> None:
    (tmp_path / "gcc-12").symlink_to("/bin/true")
    (tmp_path / "gcc-99").symlink_to(tmp_path / "missing")
    (tmp_path / "notes").write_text("not a program")
    assert read_whitelist(str(tmp_path)) == {"gcc-12"}
    assert read_whitelist(str(tmp_path / "absent")) == set()


def test_check_whitelist_names_the_missing_compiler(tmp_path: Path) -> None:
    (tmp_path / "gcc-12").symlink_to("/bin/true")
    problems = check_whitelist(["gcc-12", "clang-99"], str(tmp_path))
    assert [problem.remote_name for problem in problems] == ["clang-99"]
    assert f"ln -s {os.path.relpath('/usr/bin/distcc', tmp_path)} " in problems[0].message


@pytest.mark.skipif(not Path("/usr/lib/distcc").is_dir(), reason="no distcc whitelist here")
def test_the_local_compilers_are_whitelisted(tmp_path: Path) -> None:
    env = {**os.environ, "P2PCC_CACHE_DIR": str(tmp_path)}
    names = [lookup(name, env).remote_name for name in ("gcc", "g++") if shutil.which(name)]
    assert names, "no gcc here"
    assert check_whitelist(names) == []
    assert check_whitelist(["p2pcc-test-cc-0"])[0].message.endswith(
        "`ln -s ../../bin/distcc /usr/lib/distcc/p2pcc-test-cc-0`"
    )


def test_interface_addresses_of_loopback() -> None:
    assert ipaddress.ip_interface("127.0.0.1/8") in interface_addresses("lo")
    assert interface_addresses("p2pccnone0") == ()
