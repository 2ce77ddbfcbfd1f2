"""`p2pcc config`: printing the configuration in effect and checking files."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path

import pytest

from p2pcc import paths
from p2pcc.cli import main
from p2pcc.config import discover_host_defaults, load_config, parse_config
from p2pcc.config.key_file import no_key_remedy
from p2pcc.config.model import SECTIONS
from p2pcc.core.auth import format_key_line

FULL = """\
runtime_dir = "/srv/p2pcc"
[node]
name = "ws \\"7\\""
[gossip]
group = "ff02::7063"
interval = 1
key_file = "/etc/p2pcc/key"
[distccd]
allow = ["192.168.1.7/24", "fd00::/8"]
jobs = 4
[metrics]
job_memory = 1500000000
[ranking]
lzo = true
[compilers]
offer = ["gcc", "/opt/gcc-13/bin/g++"]
extra = ["clang-14"]
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["config", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def round_trips(text: str, source: Path) -> None:
    original = load_config(str(source), os.environ)
    reread = parse_config(text, "printed", host=discover_host_defaults(os.environ))
    assert dataclasses.replace(reread, source=source) == original


def test_the_printed_configuration_parses_back_to_the_same(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "p2pcc.toml"
    source.write_text(FULL)
    status, out, err = run(capsys, "--config", str(source))
    assert (status, err) == (0, "")
    assert out.startswith(f"# p2pcc configuration in effect\n# source: {source}\n")
    assert "job_memory = 1500000000\n" in out
    round_trips(out, source)


def test_defaults_are_printed_with_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys)
    assert status == 0
    assert "# source: defaults (no configuration file found)\n" in out
    document = tomllib.loads(out)
    assert document["gossip"]["group"] == "239.192.74.70"
    assert document["metrics"]["job_memory"] == "1GiB"
    # The key's default place is the configuration directory (here the test's /etc).
    assert document["gossip"]["key_file"] == str(paths.SYSTEM_CONFIG.parent / "cluster.key")
    assert list(document) == ["runtime_dir", *SECTIONS]
    for name, cls in SECTIONS.items():
        assert list(document[name]) == [field.name for field in dataclasses.fields(cls)]


def test_the_user_config_is_found_without_arguments(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    user = tmp_path / "xdg" / "p2pcc" / "p2pcc.toml"
    user.parent.mkdir(parents=True)
    user.write_text(FULL)
    _, out, _ = run(capsys)
    assert f"# source: {user}\n" in out
    round_trips(out, user)


def test_an_environment_runtime_dir_is_noted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2PCC_RUNTIME_DIR", str(tmp_path / "run"))
    _, out, _ = run(capsys)
    assert "# runtime_dir comes from P2PCC_RUNTIME_DIR, which overrides the file\n" in out
    assert tomllib.loads(out)["runtime_dir"] == str(tmp_path / "run")


def test_check_says_ok_for_a_valid_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = tmp_path / "p2pcc.toml"
    key = tmp_path / "cluster.key"
    key.write_text(format_key_line(bytes(32)) + "\n")
    key.chmod(0o600)
    source.write_text(FULL.replace('"/etc/p2pcc/key"', f'"{key}"'))
    assert run(capsys, "--check", "--config", str(source)) == (0, f"{source}: ok\n", "")


def test_check_without_a_file_checks_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    key = paths.SYSTEM_CONFIG.parent / "cluster.key"  # the default key file, for root
    code, out, err = run(capsys, "--check")
    assert (code, out) == (1, "")
    assert err.startswith(f"p2pcc: {key}: gossip.key_file: no such file; make the pool's key")
    key.parent.mkdir()
    key.write_text(format_key_line(bytes(32)) + "\n")
    key.chmod(0o600)
    assert run(capsys, "--check") == (0, "defaults: ok\n", "")


def test_check_prints_the_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "p2pcc.toml"
    source.write_text('[gossip]\nport = "abc"\n')
    assert run(capsys, "--check", "--config", str(source)) == (
        1,
        "",
        f'p2pcc: {source}: gossip.port: expected an integer from 1 to 65535, got "abc"\n',
    )


def test_printing_a_bad_file_fails_the_same_way(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "p2pcc.toml"
    source.write_text("[gossip]\nintervall = 3\n")
    monkeypatch.setenv("P2PCC_CONFIG", str(source))
    assert run(capsys) == (
        1,
        "",
        f"p2pcc: {source}: gossip.intervall: unknown key (did you mean gossip.interval?)\n",
    )


def test_a_missing_named_file_is_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.toml"
    assert run(capsys, "--check", "--config", str(missing)) == (
        1,
        "",
        f"p2pcc: {missing}: cannot read: No such file or directory (named by --config)\n",
    )


def test_check_reads_the_key_file_as_the_daemon_does(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "p2pcc.toml"
    key = tmp_path / "cluster.key"
    source.write_text(f'[gossip]\nkey_file = "{key}"\n')
    assert run(capsys, "--check", "--config", str(source)) == (
        1,
        "",
        f"p2pcc: {key}: gossip.key_file: no such file; {no_key_remedy()}\n",
    )
    key.write_text("not a key\n")
    key.chmod(0o600)
    code, out, err = run(capsys, "--check", "--config", str(source))
    assert (code, out) == (1, "")
    assert err.startswith(f"p2pcc: {key}")
    assert err.count("\n") == 1


def test_check_refuses_a_key_file_others_may_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "p2pcc.toml"
    key = tmp_path / "cluster.key"
    key.write_text(format_key_line(bytes(32)) + "\n")
    key.chmod(0o644)
    source.write_text(f'[gossip]\nkey_file = "{key}"\n')
    assert run(capsys, "--check", "--config", str(source)) == (
        1,
        "",
        f"p2pcc: {key}: gossip.key_file: has mode 0644: other users can read the cluster key "
        f"and join the pool; run `chmod 600 {key}`\n",
    )
    key.chmod(0o600)
    assert run(capsys, "--check", "--config", str(source)) == (0, f"{source}: ok\n", "")


def test_check_accepts_an_insecure_pool_without_a_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "p2pcc.toml"
    source.write_text("[gossip]\ninsecure = true\n")
    assert run(capsys, "--check", "--config", str(source)) == (0, f"{source}: ok\n", "")
