"""The wrapper keeps local what a peer's job guard would refuse, so a build never has a
peer benched for 60 s over one of its own options: each guard refusal of the table in
tests/core/test_job_guard.py, as a client's command line, is kept local by the wrapper
(or never reaches the guard, because the distcc client strips it)."""

from __future__ import annotations

import pytest

from p2pcc.core.job_guard import Refused, check_job
from p2pcc.wrapper.args import classify
from tests.core.test_job_guard import IN, JOB, OUT, REFUSED

#: Options the distcc client takes off the command line before sending it (checked
#: with distcc 3.4 and a logging guard): they never reach a peer's guard.
STRIPPED_BY_DISTCC = ("-I", "-D", "-include", "-imacros", "-Wp,", "-Wl,")

#: Hostile shapes the wrapper has no reason to keep local (no build writes them); they
#: reach the guard only from a client that is not p2pcc's.
HOSTILE_ONLY = ("-O2 -wrapper", "-Wall\n-wrapper", "-fvisibility=hidden/x", "-O2\u00e9")
#: Values the guard does not know (`-fNAME=`/`-mNAME=` words off its lists, odd `--param`
#: or `-target` values): the wrapper does not check values against the guard's lists,
#: which would put the rules on every compile's path.  Such a job costs the 60 s.
UNCHECKED_VALUES = ("-ffoo=bar", "-mfoo=bar", "--param", "-target")


def client_options() -> list[list[str]]:
    """The table's refused options, as they would be given to the compiler."""
    found = []
    for arguments, _ in REFUSED:
        extra = [a for a in arguments if a not in ("-c", IN, "-o", OUT) and JOB not in a]
        skipped = (*HOSTILE_ONLY, *UNCHECKED_VALUES)
        if extra and extra[0] not in skipped and not extra[0].startswith(STRIPPED_BY_DISTCC):
            found.append(extra)
    return found


@pytest.mark.parametrize("extra", client_options())
def test_what_the_guard_refuses_stays_local(extra: list[str]) -> None:
    assert isinstance(check_job(["-c", IN, "-o", OUT, *extra], JOB), Refused)
    distributable, why = classify(["-c", "x.c", "-o", "x.o", *extra])
    assert not distributable, (extra, why)


def test_link_options_a_build_passes_go_remote() -> None:
    extra = ["-rdynamic", "-fuse-ld=lld", "-static-libgcc"]
    assert classify(["-c", "x.c", "-o", "x.o", *extra]) == (True, "compile")
