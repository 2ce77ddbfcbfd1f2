"""The command line's entry points: console script, `python -m p2pcc`, usage errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from p2pcc import __version__
from p2pcc.cli import main


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"p2pcc {__version__}\n"


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "p2pcc", "--version"], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout) == (0, f"p2pcc {__version__}\n")


def test_no_command_prints_usage_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: p2pcc" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["frobnicate"])
    assert exited.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "p2pcc"
    result = subprocess.run([script, "--version"], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout) == (0, f"p2pcc {__version__}\n")


def test_the_command_line_parser_loads_no_trio() -> None:
    """Every command's start-up pays for what the parser imports: trio (~0.15 s) only
    where a command runs it (the daemon, a live or traced build)."""
    code = "import sys, p2pcc.cli; p2pcc.cli.build_parser(); print('trio' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
