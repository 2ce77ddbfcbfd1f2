"""The local-users campaign: a second local user (uid 65534, `nobody`) against root's build
and root's daemon on a namespace workstation.

* The wrapper: nobody plants a state file where root's build looks (`P2PCC_RUNTIME_DIR`
  naming a directory nobody owns), whose `-march=native` record carries `-wrapper` (a
  command of nobody's choosing around every compiler pass) and whose hosts line carries
  junk (an option word and an ssh host).  Root's `gcc -march=native -c` through the
  links compiles locally, the object is byte for byte the plain local build, nothing
  from the file runs, and the build gets one warning.  The same content in a file of
  root's own is refused at the hosts line, and with a good hosts line the record is
  not used: each check stands on its own.
* The control socket: nobody tries to replace, shorten and end root's pause, then
  floods 2,000 pause requests.  Root's pause stays as it was, every request is
  answered, and the daemon's log, its pause file and its gossip grow by a bounded
  amount; a flood of nobody's own pauses (no pause of root's in the way) costs no more
  than the change budget.

Figures are printed with the prefix `BAD-INPUT-FIGURE: ` (run with -s); docs/security.md
records them.  Unit-level proofs: tests/test_statefile.py, tests/wrapper/test_trust.py,
tests/wrapper/test_native.py, tests/core/test_rate_limit.py, tests/daemon/test_control.py
and tests/daemon/test_node_control.py.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pcc import statefile
from p2pcc.core import rate_limit
from tests.integration.netbed import TestBed
from tests.integration.pool import Daemon, start_pool, wait_until
from tests.integration.test_bad_input_campaign import WrapperSetup

pytestmark = [pytest.mark.integration, pytest.mark.netns]

FIGURE = "BAD-INPUT-FIGURE: "
NOBODY = 65534
#: The second user's programs run with the system's python3 (ours may live where nobody
#: cannot read it) and the standard library only.
SYSTEM_PYTHON = shutil.which("python3", path=os.defpath)
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
SOURCES = {
    "one.c": "int one(int x) { return x * 3 + 1; }\n",
    "two.c": "double two(double a, double b) { return a / b; }\n",
}


@pytest.fixture
def alpha(bed: TestBed, shared_tmp: Path) -> Iterator[Daemon]:
    if SYSTEM_PYTHON is None:
        pytest.skip("no python3 in the system PATH for the second user")
    for daemons in start_pool(bed, shared_tmp, ["alpha"], None):
        wait_until(daemons[0].status, 30, "alpha's daemon to answer")  # no peers to wait for
        yield daemons[0]


def as_nobody(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the system python3 with `args` as the second local user."""
    assert SYSTEM_PYTHON is not None
    return subprocess.run(
        [*AS_NOBODY, SYSTEM_PYTHON, "-I", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


# --- 1: a state file planted by another user -----------------------------------------------


def test_a_state_file_planted_by_another_user_steers_nothing(
    alpha: Daemon, shared_tmp: Path
) -> None:
    links, work, marker = shared_tmp / "links", shared_tmp / "work", shared_tmp / "wrapped"
    work.mkdir()
    for name, text in SOURCES.items():
        (work / name).write_text(text)
    (work / "Makefile").write_text(
        "all: one.o two.o\n%.o: %.c\n\tgcc -march=native -O2 -c $< -o $@\n"
    )
    install = ["install-links", str(links), "--config", str(alpha.config_path)]
    alpha.ws.run(
        [sys.executable, "-m", "p2pcc", *install], env={**os.environ, "PATH": "/usr/bin:/bin"}
    )
    setup = WrapperSetup(alpha, links, work)  # runs commands in `work` with a scenario's files
    payload = f"/bin/sh,-c,touch {marker}"
    # The payload works when gcc is given it: its absence later means it never came in.
    subprocess.run(["/usr/bin/gcc", "-wrapper", payload, "-c", "one.c"], cwd=work, check=False)
    assert marker.exists()
    marker.unlink()
    for name in SOURCES:
        stem = name.removesuffix(".c")
        flags = ["-march=native", "-O2", "-c", name, "-o", f"{stem}.local"]
        subprocess.run(["/usr/bin/gcc", *flags], cwd=work, check=True)
    compile_one = ("gcc", "-march=native", "-O2", "-c", "one.c", "-o", "one.o")
    junk_hosts = "10.99.99.99:3632/4 --randomize nobody@10.99.99.99/4 localhost/2"
    evil = planted_state(alpha, junk_hosts, ("-march=x86-64", "-wrapper", payload))

    # Nobody's own directory (what P2PCC_RUNTIME_DIR names), nobody's own file: root's
    # build does not believe it.  A scenario each for one compile and for a make: each
    # its own build, with its own warning.
    for name in ("nobody", "nobody-make"):
        (shared_tmp / name / "run").mkdir(parents=True)
        os.chown(shared_tmp / name / "run", NOBODY, NOBODY)
        write_as_nobody(shared_tmp / name / "run" / statefile.FILE_NAME, evil())
    planted = shared_tmp / "nobody" / "run" / statefile.FILE_NAME

    def compiles_here(scenario: str, what: str, *command: str) -> list[str]:
        """`command` in `scenario`: it succeeds, every object it builds is the plain
        local build's, the payload does not run; its `p2pcc:` lines."""
        for stale in work.glob("*.o"):
            stale.unlink()
        started = time.monotonic()
        done = setup.run(shared_tmp / scenario, *command)
        took = time.monotonic() - started
        lines = [line for line in done.stderr.splitlines() if line.startswith("p2pcc: ")]
        print(
            f"\n{FIGURE}{what}: exit {done.returncode} in {took:.2f} s, payload ran: "
            f"{marker.exists()}, stderr {lines}"
        )
        assert done.returncode == 0, done.stderr
        built = [path.stem for path in work.glob("*.o")]
        assert built
        assert all(same_object(work, stem) for stem in built)
        assert not marker.exists()
        return lines

    assert compiles_here("nobody", "nobody's state file, gcc -march=native -c", *compile_one) == [
        f"p2pcc: not trusting the state file {planted}: it belongs to uid {NOBODY}, not to "
        "root; compiling locally (this warning is shown once per build)"
    ]
    make = ("make", "-j2", "--no-print-directory")
    assert len(compiles_here("nobody-make", "make -j2, two such compiles", *make)) == 1
    assert (work / "two.o").exists()

    # The same content in a file of root's own: the hosts line is refused...
    (shared_tmp / "root" / "run").mkdir(parents=True)
    (shared_tmp / "root" / "run" / statefile.FILE_NAME).write_text(evil())
    [warning] = compiles_here("root", "root's own file with the junk hosts line", *compile_one)
    assert "is not one the p2pcc daemon writes" in warning

    # ... and with a good hosts line the record is not used: gcc compiles with the
    # user's own -march=native, here, without a warning.
    good = planted_state(alpha, "10.99.99.99:3632/4 localhost/2", ("-wrapper", payload))
    (shared_tmp / "root" / "run" / statefile.FILE_NAME).write_text(good())
    verbose = ("env", "P2PCC_VERBOSE=1", *compile_one)
    [said] = compiles_here("root", "root's own file, good hosts line, -wrapper record", *verbose)
    assert said.startswith("p2pcc: the recorded expansion of -march=native holds '-wrapper'")


def planted_state(daemon: Daemon, hosts: str, native: tuple[str, ...]) -> Any:
    """A maker of fresh state-file text: the daemon's own compiler records (so only the
    planted parts stand between the file and use), every hosts line `hosts`, and a
    `-march=native` record `native` for each compiler."""
    path = str(daemon.runtime_dir / statefile.FILE_NAME)
    state = wait_until(lambda: statefile.read(path), 30, "the daemon's state file")
    _, lines, compilers, _ = state
    assert lines, "the daemon offers no compiler"

    def text() -> str:
        return statefile.render(
            time.time(),
            dict.fromkeys(lines, (4, hosts)),
            compilers,
            {fingerprint: {"-march=native": native} for fingerprint in lines},
        )

    return text


def write_as_nobody(path: Path, text: str) -> None:
    as_nobody("-c", f"import sys; open({str(path)!r}, 'w').write(sys.stdin.read())", stdin=text)
    assert path.stat().st_uid == NOBODY


def same_object(work: Path, stem: str) -> bool:
    return (work / f"{stem}.o").read_bytes() == (work / f"{stem}.local").read_bytes()


# --- 2: another user against root's pause -----------------------------------------------------

#: Sends each request line of argv[2] (JSON list) on a connection of its own, or
#: `count` copies of one; prints the answers' codes counted, the first answer of each
#: code, and the seconds it took.
CLIENT = """
import json, socket, sys, time
path, requests, count = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
if count:
    requests = [requests[0]] * count
codes, first, started = {}, {}, time.monotonic()
for request in requests:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    sock.sendall(json.dumps(request).encode() + b"\\n")
    data = b""
    while not data.endswith(b"\\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    answer = json.loads(data)
    code = "ok" if answer["ok"] else answer["code"]
    codes[code] = codes.get(code, 0) + 1
    first.setdefault(code, answer)
print(json.dumps({"codes": codes, "first": first, "seconds": time.monotonic() - started}))
"""


def nobody_asks(daemon: Daemon, requests: list[dict[str, Any]], count: int = 0) -> dict[str, Any]:
    done = as_nobody(
        "-c", CLIENT, str(daemon.runtime_dir / "control"), json.dumps(requests), str(count)
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


class Renames:
    """Counts the times a file in `directory` is replaced or removed (inotify)."""

    IN_MOVED_TO, IN_DELETE, IN_CREATE = 0x80, 0x200, 0x100
    _EVENT = struct.Struct("iIII")

    def __init__(self, directory: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        mask = self.IN_MOVED_TO | self.IN_DELETE | self.IN_CREATE
        assert libc.inotify_add_watch(self.fd, bytes(directory), mask) >= 0

    def of(self, name: str) -> int:
        """Events on `name` since the last call."""
        count = 0
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return count
            offset = 0
            while offset < len(data):
                _, _, _, size = self._EVENT.unpack_from(data, offset)
                start = offset + self._EVENT.size
                count += data[start : start + size].rstrip(b"\0").decode() == name
                offset = start + size

    def close(self) -> None:
        os.close(self.fd)


def log_lines(daemon: Daemon) -> list[str]:
    return daemon.log_text().splitlines()


def test_another_user_cannot_undo_roots_pause_and_a_flood_costs_little(alpha: Daemon) -> None:
    root_pause = alpha.cli("pause", "--for", "1h", "--reason", "maintenance")
    assert root_pause.stdout.startswith("paused until ")
    status = alpha.status()
    assert status is not None
    before = status["node"]["pause"]
    assert (before["by_uid"], before["reason"]) == (0, "maintenance")
    pause_file = alpha.home / "pause"
    assert pause_file.exists()

    tricks = [
        {"op": "pause", "seconds": 0.01},  # the trick: replace, end at once
        {"op": "pause", "seconds": 60, "reason": "shorter"},
        {"op": "pause", "seconds": 7200, "reason": "longer, then mine to resume"},
        {"op": "pause", "reason": "endless"},
        {"op": "resume"},
    ]
    answers = nobody_asks(alpha, tricks)
    refusal = answers["first"]["permission-denied"]["error"]
    print(f"\n{FIGURE}nobody's pause tricks against root's pause: {answers['codes']}; {refusal!r}")
    assert answers["codes"] == {"permission-denied": len(tricks)}
    assert refusal.startswith("paused by uid 0 until ")
    assert refusal.endswith(" UTC (maintenance): only that user or root may replace or shorten it")

    # The flood: 2,000 pause requests, each on a connection of its own.
    writes = Renames(alpha.home)
    lines_before = log_lines(alpha)
    packets_before = counters(alpha)["packets_out"]
    flood = nobody_asks(alpha, [{"op": "pause", "seconds": 0.01}], 2000)
    time.sleep(0.5)
    new_lines = log_lines(alpha)[len(lines_before) :]
    about_nobody = [line for line in new_lines if f"uid {NOBODY}" in line]
    packets = counters(alpha)["packets_out"] - packets_before
    pause_writes = writes.of("pause")
    print(
        f"{FIGURE}2,000 pause requests by nobody against root's pause in "
        f"{flood['seconds']:.2f} s: answers {flood['codes']}; daemon log +{len(new_lines)} "
        f"lines ({len(about_nobody)} about uid {NOBODY}), pause file written {pause_writes} "
        f"times, {packets} gossip datagrams sent meanwhile (interval 0.5 s)"
    )
    status = alpha.status()
    assert status is not None
    assert status["node"]["pause"] == before  # root's pause, untouched
    assert sum(flood["codes"].values()) == 2000  # every request answered
    assert set(flood["codes"]) <= {"permission-denied", "busy"}
    assert flood["codes"].get("permission-denied", 0) <= rate_limit.CHANGE_BURST + (
        rate_limit.CHANGE_RATE * flood["seconds"] + 1
    )
    assert len(about_nobody) <= 2  # one line per kind of refusal a minute
    assert pause_writes == 0
    assert packets <= 2 * (flood["seconds"] + 1.5) + 2  # the gossip schedule alone

    # No pause of root's in the way: a flood of nobody's own, each one a change.
    alpha.cli("resume")
    time.sleep(1 + rate_limit.CHANGE_BURST / rate_limit.CHANGE_RATE)  # a full change budget
    writes.of("pause")
    lines_before = log_lines(alpha)
    packets_before = counters(alpha)["packets_out"]
    own = nobody_asks(alpha, [{"op": "pause", "seconds": 600 + i} for i in range(2000)])
    time.sleep(0.5)
    new_lines = log_lines(alpha)[len(lines_before) :]
    paused_lines = [line for line in new_lines if f"paused by uid {NOBODY}" in line]
    packets = counters(alpha)["packets_out"] - packets_before
    pause_writes = writes.of("pause")
    writes.close()
    changes = own["codes"].get("ok", 0)
    print(
        f"{FIGURE}2,000 changing pauses by nobody, no pause in the way, in "
        f"{own['seconds']:.2f} s: answers {own['codes']}; daemon log +{len(new_lines)} lines "
        f"({len(paused_lines)} pauses), pause file written {pause_writes} times, {packets} "
        "gossip datagrams sent meanwhile"
    )
    assert sum(own["codes"].values()) == 2000
    assert set(own["codes"]) == {"ok", "busy"}
    assert changes <= rate_limit.CHANGE_BURST + rate_limit.CHANGE_RATE * own["seconds"] + 1
    assert len(paused_lines) == changes
    assert pause_writes <= changes
    assert packets <= 2 * (own["seconds"] + 1.5) + changes + 2
    status = alpha.status()
    assert status is not None
    assert status["node"]["pause"]["by_uid"] == NOBODY
    alpha.cli("resume")  # root may end anyone's pause


def counters(daemon: Daemon) -> dict[str, Any]:
    status = daemon.status()
    assert status is not None
    result: dict[str, Any] = status["counters"]
    return result


#: Opens argv[2] connections and says nothing; prints which were refused at once, waits
#: for the rest to be closed and prints when and how.
HOLDER = """
import json, socket, sys, time
path, count = sys.argv[1], int(sys.argv[2])
socks = []
for _ in range(count):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    socks.append(sock)
started = time.monotonic()
refused, held = 0, []
for sock in socks:
    sock.settimeout(0.3)
    try:
        answer = json.loads(sock.recv(65536))
        refused += answer["code"] == "busy"
    except socket.timeout:
        held.append(sock)
print(json.dumps({"refused": refused, "held": len(held)}), flush=True)
closed = []
for sock in held:
    sock.settimeout(30)
    answer = json.loads(sock.recv(65536))
    closed.append([answer["code"], time.monotonic() - started])
print(json.dumps({"closed": closed}), flush=True)
"""


def test_connections_held_open_by_another_user_lock_no_one_out(alpha: Daemon) -> None:
    assert SYSTEM_PYTHON is not None
    with subprocess.Popen(
        [*AS_NOBODY, SYSTEM_PYTHON, "-I", "-c", HOLDER, str(alpha.runtime_dir / "control"), "40"],
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None
            first = json.loads(holder.stdout.readline())
            started = time.monotonic()
            status = alpha.status()  # root, through the CLI, while nobody holds its share
            took = time.monotonic() - started
            last = json.loads(holder.stdout.readline())
        finally:
            holder.kill()
    closed_after = [seconds for _, seconds in last["closed"]]
    print(
        f"\n{FIGURE}nobody opens 40 silent control connections: {first['held']} held, "
        f"{first['refused']} refused at once with busy; root's `p2pcc status` meanwhile "
        f"answered in {took:.2f} s; the held ones closed ({last['closed'][0][0]}) "
        f"{max(closed_after):.1f} s after they connected"
    )
    assert status is not None
    assert first == {"held": rate_limit.MAX_CONNECTIONS_PER_UID, "refused": 40 - first["held"]}
    assert {code for code, _ in last["closed"]} == {"timeout"}
    assert max(closed_after) < 5.5  # the idle timeout, counted from the connection
