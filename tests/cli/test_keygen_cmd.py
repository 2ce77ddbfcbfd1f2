"""`p2pcc keygen`: a fresh key written privately where the daemon looks, and its token."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from p2pcc import paths
from p2pcc.cli import keygen_cmd, main
from p2pcc.core.auth import GENERATED_KEY_BYTES, parse_key_file
from p2pcc.core.errors import P2pccError
from p2pcc.core.key_token import decode_token


def run_keygen(*argv: str) -> int:
    # A parser of our own: the command must work whichever dispatcher registers it.
    parser = argparse.ArgumentParser(prog="p2pcc")
    keygen_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["keygen", *argv])
    status: int = args.handler(args)
    return status


def default_key() -> Path:
    """Where the key goes without --output or a configuration (the tests' /etc for root)."""
    if os.geteuid() == 0:
        return paths.SYSTEM_CONFIG.parent / "cluster.key"
    return Path(os.environ["XDG_CONFIG_HOME"]) / "p2pcc" / "cluster.key"


def test_writes_the_default_key_file_and_prints_its_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_keygen() == 0
    out, err = capsys.readouterr()
    key_file = default_key()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    keyring = parse_key_file(key_file.read_text(), str(key_file))
    assert len(keyring.keys[0]) == GENERATED_KEY_BYTES
    assert out.count("\n") == 1  # the token alone: a script can capture it
    assert decode_token(out) == keyring.keys[0]
    assert str(key_file) in err
    assert "p2pcc join" in err


def test_every_run_makes_a_different_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    keys = {
        decode_token((run_keygen("-o", str(tmp_path / f"k{n}")), capsys.readouterr().out)[1])
        for n in range(3)
    }
    assert len(keys) == 3


def test_the_configured_key_file_is_used(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "keys" / "pool.key"
    target.parent.mkdir()
    config = tmp_path / "p2pcc.toml"
    config.write_text(f'[gossip]\nkey_file = "{target}"\n')
    assert run_keygen("--config", str(config)) == 0
    token = capsys.readouterr().out
    assert decode_token(token) == parse_key_file(target.read_text(), "k").keys[0]
    # --token shows the installed key's token again, for a machine that joins later.
    assert run_keygen("--config", str(config), "--token") == 0
    assert capsys.readouterr().out == token


def test_an_insecure_configuration_needs_an_output(tmp_path: Path) -> None:
    config = tmp_path / "p2pcc.toml"
    config.write_text("[gossip]\ninsecure = true\n")
    with pytest.raises(P2pccError, match=r"unkeyed pool .*--output"):
        run_keygen("--config", str(config))


@pytest.mark.parametrize("umask", [0o022, 0o000, 0o277])
def test_output_file_is_created_with_mode_0600(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], umask: int
) -> None:
    target = tmp_path / "cluster.key"
    previous = os.umask(umask)
    try:
        assert run_keygen("--output", str(target)) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert len(parse_key_file(target.read_text(), str(target))) == 1
    out, err = capsys.readouterr()
    assert str(target) in err
    assert "p2pcc-key-v1:" not in out + err  # the key file's line goes to the file only


def test_output_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "cluster.key"
    target.write_text("the old key\n")
    with pytest.raises(P2pccError, match="already exists; refusing to overwrite"):
        run_keygen("-o", str(target))
    assert target.read_text() == "the old key\n"


def test_output_never_follows_a_symlink(tmp_path: Path) -> None:
    link = tmp_path / "cluster.key"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(P2pccError, match="already exists"):
        run_keygen("--output", str(link))
    assert not (tmp_path / "elsewhere").exists()


def test_output_in_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "cluster.key"
    with pytest.raises(P2pccError, match="cannot create: No such file or directory"):
        run_keygen("--output", str(target))


def test_the_dispatcher_reports_a_refusal_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "cluster.key"
    assert main(["keygen", "--output", str(target)]) == 0
    capsys.readouterr()
    assert main(["keygen", "--output", str(target)]) == 1
    err = capsys.readouterr().err
    assert err == f"p2pcc: {target}: already exists; refusing to overwrite a key " + (
        "(`p2pcc keygen --token` prints its token; remove it or choose another --output "
        "for a new key)\n"
    )
