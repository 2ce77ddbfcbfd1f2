"""`p2pcc doctor` on a broken set-up names each problem with its fix, and exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pcc.cli import main
from p2pcc.cli.doctor_checks import Level, worst
from p2pcc.cli.doctor_cmd import run_checks
from p2pcc.wrapper.lookup import ENTRY_NAME, MARKER


@pytest.fixture
def broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No distcc on PATH, the link directory behind a real compiler's, no daemon, and a
    cluster key others may read; returns the configuration file."""
    compilers = tmp_path / "bin"
    compilers.mkdir()
    (compilers / "gcc").symlink_to("/usr/bin/gcc")
    links = tmp_path / "links"
    links.mkdir()
    (links / MARKER).write_text("")
    (links / ENTRY_NAME).write_text("#!/bin/sh\nexit 1\n")
    (links / ENTRY_NAME).chmod(0o755)
    (links / "gcc").symlink_to(ENTRY_NAME)
    # /usr/sbin keeps `ip` (interfaces) reachable; it has no distcc.
    monkeypatch.setenv("PATH", f"{compilers}:{links}:/usr/sbin")
    monkeypatch.setenv("P2PCC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("P2PCC_RUNTIME_DIR", raising=False)
    key = tmp_path / "cluster.key"
    key.write_text("not even a key\n")
    key.chmod(0o644)
    config = tmp_path / "p2pcc.toml"
    config.write_text(
        f'runtime_dir = "{tmp_path / "run"}"\n'
        f'[node]\nid_file = "{tmp_path / "node-id"}"\n'
        f'[gossip]\nkey_file = "{key}"\n'
    )
    return config


def test_a_broken_setup_names_each_problem_and_exits_2(
    broken: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["doctor", "--config", str(broken)])
    lines = capsys.readouterr().out.splitlines()
    assert status == 2
    tmp = broken.parent

    def line(prefix: str) -> str:
        found = [text for text in lines if text.startswith(prefix)]
        assert found, f"no line starting {prefix!r} in:\n" + "\n".join(lines)
        return found[0]

    assert line("ok    config: ") == f"ok    config: {broken} is valid"
    assert line("FAIL  distcc: ") == (
        "FAIL  distcc: distcc (the client the compiler links run) is not on PATH; "
        "fix: install distcc (Debian/Ubuntu: `apt install distcc`)"
    )
    assert line("FAIL  distccd: ").startswith("FAIL  distccd: distccd (the server")
    assert line("FAIL  daemon: ") == (
        "FAIL  daemon: the p2pcc daemon is not running "
        f"(no control socket at {tmp / 'run' / 'control'}); "
        "fix: start it: `systemctl start p2pcc` (or `p2pcc daemon` in a terminal)"
    )
    assert line("FAIL  links: ") == (
        f"FAIL  links: {tmp / 'links'} comes after {tmp / 'bin'} in PATH: "
        f"gcc runs {tmp / 'bin' / 'gcc'} directly; "
        f'fix: put it first: `export PATH="{tmp / "links"}:$PATH"` (in your shell profile)'
    )
    assert line("FAIL  key: ") == (
        f"FAIL  key: {tmp / 'cluster.key'} has mode 0644: others may read the cluster key; "
        f"fix: `chmod 600 {tmp / 'cluster.key'}`"
    )
    assert line("warn  peers: ").startswith("warn  peers: cannot tell: the daemon is not running")
    assert lines[-1].endswith("failure(s)")


def test_a_broken_configuration_is_a_failure_and_the_rest_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2PCC_RUNTIME_DIR", str(tmp_path / "run"))
    config = tmp_path / "p2pcc.toml"
    config.write_text("[gossip]\nport = 0\n")
    findings = run_checks(str(config), {"PATH": "/usr/bin:/usr/sbin"})
    first = findings[0]
    assert (first.level, first.check) == (Level.FAIL, "config")
    assert first.message == f"{config}: gossip.port: expected an integer from 1 to 65535, got 0"
    checks = {finding.check for finding in findings}
    assert {"distcc", "distccd", "daemon", "links", "key"} <= checks
    assert worst(findings) is Level.FAIL
