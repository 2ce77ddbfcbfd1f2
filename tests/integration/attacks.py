"""What an attacker does to a pool's distccd, for the closed-door tests: real distcc jobs
carrying distcc's known tricks, a plain TCP probe, and a fake distccd that counts the
connections a forged peer would attract.  Every tool runs inside a test-bed workstation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.netbed import Workstation
from tests.integration.pool import Daemon

DISTCCD_PORT = 3632

#: Tries one TCP connection and says how it went: "connected", "refused" (a reset) or
#: "error ..." (a silent drop times out).
PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(5)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except ConnectionRefusedError:
    print("refused")
except OSError as error:
    print(f"error {error}")
else:
    print("connected")
"""

#: A distcc client (protocol 1) that sends exactly the command line it is given, as an
#: attacker's own client would: `python3 - HOST PORT SOURCE ARG...`; prints the
#: compiler's status, its stderr and the object's size as one JSON line.
RAW_CLIENT = """
import json, socket, sys
host, port, source, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
def word(token, value):
    return token.encode() + b"%08x" % value
def item(token, data):
    return word(token, len(data)) + data
request = word("DIST", 1) + word("ARGC", len(args))
request += b"".join(item("ARGV", a.encode()) for a in args)
request += item("DOTI", open(source, "rb").read())
s = socket.create_connection((host, port), timeout=60)
s.sendall(request)
reply = b""
try:
    while chunk := s.recv(65536):
        reply += chunk
except ConnectionError:
    pass  # distccd may drop a job it refuses itself
fields, at = {}, 0
while at + 12 <= len(reply):
    token, size = reply[at:at + 4].decode(), int(reply[at + 4:at + 12], 16)
    at += 12
    if token in ("SERR", "SOUT", "DOTO"):
        fields[token], at = reply[at:at + size].decode(errors="replace"), at + size
    else:
        fields[token] = size
print(json.dumps(fields))
"""

#: A fake distccd: accepts on ADDRESS:PORT for at most SECONDS, and writes to OUT how
#: many connections came (a forged peer's catch), once a second and at the end.
FAKE_DISTCCD = """
import socket, sys, time
address, port, seconds, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
server = socket.create_server((address, port))
server.settimeout(1.0)
count, deadline = 0, time.monotonic() + min(seconds, 300.0)
open(out, "w").write("0\\n")
print("ready", flush=True)
while time.monotonic() < deadline:
    try:
        connection, _ = server.accept()
    except TimeoutError:
        pass
    else:
        count += 1
        connection.close()
    open(out, "w").write(f"{count}\\n")
"""


def probe(ws: Workstation, address: str) -> str:
    """One TCP connection from `ws` to distccd's port at `address`: how it went."""
    return ws.run([sys.executable, "-c", PROBE, address, str(DISTCCD_PORT)]).stdout.strip()


def node_part(daemon: Daemon, part: str) -> dict[str, Any]:
    """`part` of the daemon's own status (`door`, `job_guard`), {} while it does not answer."""
    status = daemon.status()
    return {} if status is None else dict(status["node"].get(part) or {})


def distcc_job(
    ws: Workstation,
    server: str,
    workdir: Path,
    source: str,
    extra: list[str],
    *,
    fallback: bool,
) -> subprocess.CompletedProcess[str]:
    """One real `distcc gcc -c` of `source` from `ws` to `server` only, with a DISTCC_DIR
    of its own (a refusal benches the server for 60 s in that directory)."""
    workdir.mkdir(parents=True)
    (workdir / "distcc").mkdir()
    (workdir / "job.c").write_text(source)
    env = dict(os.environ, DISTCC_HOSTS=f"{server}/2", DISTCC_DIR=str(workdir / "distcc"))
    env["DISTCC_FALLBACK"] = "1" if fallback else "0"
    env["DISTCC_VERBOSE"] = "0"
    return ws.run(
        ["distcc", "gcc", "-c", str(workdir / "job.c"), "-o", str(workdir / "job.o"), *extra],
        env=env,
        timeout=120,
        check=False,
    )


def tricks(home: Path, ran: Path) -> dict[str, list[str]]:
    """Options that would run a command as distccd's user, load code into its compiler or
    read or write files beside the job; whatever runs appends the name of the user it ran
    as to `ran` (the client's own preprocessing runs some of them, as root there: only
    "distccd" in `ran` is a breach)."""
    record = f'id -un >> {ran}; exec "$0" "$@"'
    evil = home / "evil"
    evil.mkdir(parents=True)
    for program in ("as", "x86_64-linux-gnu-gcc", "sh"):
        planted = evil / program
        planted.write_text(f"#!/bin/sh\nid -un >> {ran}\nexit 0\n")
        planted.chmod(0o755)
    options = home / "options"
    options.write_text(f"-wrapper '/bin/sh,-c,{record}'\n")
    specs = home / "evil.specs"
    specs.write_text(f"*invoke_as:\n/bin/sh -c 'id -un >> {ran}'\n")
    return {
        "wrapper": ["-wrapper", f"/bin/sh,-c,{record}"],
        "B": [f"-B{evil}/"],
        "@file": [f"@{options}"],
        "specs": [f"-specs={specs}"],
        "plugin": ["-fplugin=/nonexistent/evil.so"],
        "plugin by name": ["-fplugin=evil"],
        "save-temps": ["-save-temps"],
        "dump": ["-fdump-tree-all"],
        "include": ["-include", "/etc/passwd"],
    }


#: Options distccd 3.4 refuses itself (`-fplugin=`, `-specs=`) before running anything.
DISTCCD_REFUSES = ("specs", "plugin", "plugin by name")


def raw_job(ws: Workstation, server: str, home: Path, argv: list[str]) -> dict[str, Any]:
    """One job sent as it is, with no local preprocessing (`RAW_CLIENT`): the reply's
    fields (`STAT`, `SERR`, `DOTO`, ...)."""
    source = home / "raw.c"
    source.write_text("int raw(void) { return 3; }\n")
    result = ws.run(
        [sys.executable, "-c", RAW_CLIENT, server, str(DISTCCD_PORT), str(source), *argv],
        timeout=120,
    )
    reply: dict[str, Any] = json.loads(result.stdout)
    return reply


def distccd_log(daemon: Daemon) -> str:
    """The text of the daemon's distccd log ("" before there is one)."""
    path = daemon.runtime_dir / "distccd" / "distccd.log"
    return path.read_text(errors="replace") if path.exists() else ""


def incbin_source(path: str) -> str:
    """C whose object would hold the file at `path`, if the assembler could read it."""
    return f'asm(".incbin \\"{path}\\"");\nint job(void) {{ return 1; }}\n'
