"""Running probe commands: status and both streams, killed past the time or output cap."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from p2pcc.compilers.run_capped import run_capped
from p2pcc.core.errors import FingerprintError

MakeScript = Callable[[str, str], Path]


def test_run_capped_returns_status_and_both_streams(make_script: MakeScript) -> None:
    script = make_script("speak", "echo out; echo err >&2; exit 3")
    assert run_capped([str(script)], os.environ) == (3, "out\n", "err\n")


def test_run_capped_kills_a_babbling_program(make_script: MakeScript) -> None:
    script = make_script("babble", "while :; do echo garbage garbage garbage; done")
    with pytest.raises(FingerprintError, match="printed more than 1000 bytes"):
        run_capped([str(script), "--version"], os.environ, cap=1000)


def test_run_capped_kills_a_hanging_program(make_script: MakeScript) -> None:
    script = make_script("hang", "exec sleep 30")
    with pytest.raises(FingerprintError, match=r"'hang --version' did not finish within 0.2 s"):
        run_capped([str(script), "--version"], os.environ, timeout=0.2)
