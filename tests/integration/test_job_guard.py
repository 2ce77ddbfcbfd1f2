"""A pool member's jobs trying distcc's known tricks on another member's distccd, guarded.

`beta`, a member of a keyed pool (so through `alpha`'s door), sends `alpha` real distcc
jobs that would run a command as distccd's user (`-wrapper`, `-B` with a planted `as`,
`@file` holding a `-wrapper`), load code (`-fplugin=`, `-specs=`) or read a file of
alpha's into the object (`.incbin` of a file distccd's user can read in /etc, and of
one in a home directory).  `DISTCC_FALLBACK=0`, so a job refused remotely fails instead
of compiling locally.  Asserted: no command ran as distccd (a wrapper or the planted
`as` would say who it ran as), no object came back holding a secret, every refusal is
counted in alpha's status, and plain builds through the same pool still go remote and
give the objects a local compile gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pcc.core.job_guard import REFUSED_STATUS
from tests.integration.attacks import (
    DISTCCD_REFUSES,
    distcc_job,
    node_part,
    raw_job,
    tricks,
)
from tests.integration.netbed import TestBed
from tests.integration.pool import Daemon, start_pool, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.netns]


#: Real C for the build that must still go remote: a few functions, some headers.
SOURCES = {
    "sum.c": "#include <stddef.h>\nlong sum(const int *v, size_t n) {\n"
    "    long s = 0;\n    for (size_t i = 0; i < n; i++) s += v[i];\n    return s;\n}\n",
    "text.c": "#include <string.h>\n#include <stdio.h>\n"
    "int shout(char *out, size_t n, const char *s) {\n"
    '    return snprintf(out, n, "%s!", s) + (int)strlen(s);\n}\n',
    "table.c": "static const int squares[] = {0, 1, 4, 9, 16, 25};\n"
    "int square(unsigned i) { return i < 6 ? squares[i] : -1; }\n",
}


#: A distcc client (protocol 1) that sends exactly the command line it is given, as an
#: attacker's own client would: `python3 - HOST PORT SOURCE ARG...`; prints the
#: compiler's status, its stderr and the object's size as one JSON line.


def guard(daemon: Daemon) -> dict[str, Any]:
    """The `job_guard` part of the daemon's status."""
    return node_part(daemon, "job_guard")


@pytest.fixture
def pool(bed: TestBed, shared_tmp: Path) -> Iterator[list[Daemon]]:
    yield from start_pool(bed, shared_tmp, ("alpha", "beta"), timeout=30)


def test_a_members_tricks_run_nothing_read_nothing_and_are_counted(
    pool: list[Daemon], shared_tmp: Path, readable_secrets: dict[str, bytes]
) -> None:
    alpha, beta = pool
    wait_until(
        lambda: guard(alpha).get("problem", "") is None,
        30,
        "alpha's guard in place",
    )
    ran = shared_tmp / "ran"
    ran.touch()
    ran.chmod(0o666)  # distccd's user could write it
    refusals = 0
    plain = "int job(void) { return 42; }\n"
    compile_args = ["x86_64-linux-gnu-gcc", "-c", "job.c", "-o", "job.o"]
    for name, extra in tricks(shared_tmp, ran).items():
        client = distcc_job(
            beta.ws, alpha.ws.address, shared_tmp / name, plain, extra, fallback=False
        )
        print(f"\n{name}, distcc: exit {client.returncode}: {client.stderr.strip()[-200:]}")
        assert client.returncode != 0, client.stderr  # refused remotely, or by beta's own cpp
        refusals += "p2pcc-guard: error" in client.stderr
        raw = raw_job(beta.ws, alpha.ws.address, shared_tmp, [*compile_args, *extra])
        print(f"{name}, raw: {raw}")
        assert raw.get("DOTO", "") == "", raw
        if name in DISTCCD_REFUSES:  # distccd 3.4 drops these jobs itself, unanswered
            assert raw == {}, raw
            continue
        assert raw["STAT"] == REFUSED_STATUS << 8, raw
        assert raw["SERR"].startswith("p2pcc-guard: error: "), raw
        refusals += 1
    incbin(alpha, beta, shared_tmp, readable_secrets)
    refusals += compiler_names(alpha, beta, shared_tmp)
    assert "distccd" not in ran.read_text().split(), ran.read_text()  # 0 commands ran
    counted = wait_until(
        lambda: guard(alpha).get("refusals", 0) >= refusals and guard(alpha),
        20,
        "counted",
    )
    print(f"\nalpha's job guard: {counted}")
    assert counted["refusals"] == refusals
    assert counted["by_client"] == {beta.ws.address: refusals}
    assert alpha.log_text().count("refused a job from") == len(counted["by_reason"])


def incbin(alpha: Daemon, beta: Daemon, shared_tmp: Path, files: dict[str, bytes]) -> None:
    """`.incbin` of alpha's files: the sandbox has no /etc and no home to read them from."""
    for number, (path, data) in enumerate(files.items()):
        source = f'asm(".incbin \\"{path}\\"");\nint job(void) {{ return 1; }}\n'
        for fallback in (False, True):
            workdir = shared_tmp / f"incbin-{number}-{fallback}"
            result = distcc_job(beta.ws, alpha.ws.address, workdir, source, [], fallback=fallback)
            print(f"\nincbin {path}, fallback {fallback}: {result.stderr.strip()[-300:]}")
            if fallback:  # beta's own retry read the file: beta may, it is beta's own
                assert "retrying locally" in result.stderr, result.stderr
                assert result.returncode == 0, result.stderr
            else:
                assert "file not found" in result.stderr, result.stderr  # alpha's assembler
                assert result.returncode != 0, result.stderr
                obj = workdir / "job.o"
                assert not obj.exists() or data not in obj.read_bytes()


def compiler_names(alpha: Daemon, beta: Daemon, shared_tmp: Path) -> int:
    """Compiler names distccd's list does not have are refused by distccd; a listed name
    with a path runs the guard; returns how many the guard refused."""
    evil = shared_tmp / "evil"
    for name in ("sh", "/bin/sh", "../../../../bin/sh", f"{evil}/sh", "gcc/"):
        raw = raw_job(beta.ws, alpha.ws.address, shared_tmp, [name, "-c", "job.c", "-o", "job.o"])
        print(f"compiler {name!r}: {raw}")
        assert raw.get("DOTO", "") == "", raw
        assert raw.get("STAT", 1) != 0, raw
    # The last component names a listed compiler: the guard runs the real one, not this.
    name = f"{evil}/x86_64-linux-gnu-gcc"
    raw = raw_job(beta.ws, alpha.ws.address, shared_tmp, [name, "-c", "job.c", "-o", "job.o"])
    assert (raw["STAT"], raw["SERR"]) == (0, ""), raw
    assert len(raw["DOTO"]) > 0
    raw = raw_job(beta.ws, alpha.ws.address, shared_tmp, [name, "-c", "job.c", "-o", "j.o", "-B/"])
    assert raw["STAT"] == REFUSED_STATUS << 8, raw
    return 1


def test_plain_builds_still_go_remote_and_match_local_objects(
    pool: list[Daemon], shared_tmp: Path
) -> None:
    alpha, beta = pool
    wait_until(
        lambda: guard(alpha).get("problem", "") is None,
        30,
        "alpha's guard in place",
    )
    for name, source in SOURCES.items():
        for flags in (["-O2", "-g", "-fPIC", "-Wall"], ["-Os", "-std=gnu11"]):
            workdir = shared_tmp / f"{name}{''.join(flags)}"
            result = distcc_job(beta.ws, alpha.ws.address, workdir, source, flags, fallback=False)
            assert result.returncode == 0, result.stderr
            local = workdir / "local.o"
            beta.ws.run(["gcc", "-c", str(workdir / "job.c"), "-o", str(local), *flags])
            for obj in (workdir / "job.o", local):  # debug info names the directory
                beta.ws.run(["objcopy", "--strip-debug", str(obj)])
            assert (workdir / "job.o").read_bytes() == local.read_bytes(), (name, flags)
    assert guard(alpha)["refusals"] == 0
