"""`p2pcc keygen`: a fresh key in the key-file format, printed or written privately."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from p2pcc.cli import keygen_cmd, main
from p2pcc.core.auth import GENERATED_KEY_BYTES, parse_key_file
from p2pcc.core.errors import P2pccError


def run_keygen(*argv: str) -> int:
    # A parser of our own: the command must work whichever dispatcher registers it.
    parser = argparse.ArgumentParser(prog="p2pcc")
    keygen_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["keygen", *argv])
    status: int = args.handler(args)
    return status


def test_prints_a_key_file_with_one_new_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_keygen() == 0
    text = capsys.readouterr().out
    assert text.startswith("# ")
    keyring = parse_key_file(text, "<stdout>")
    assert len(keyring) == 1
    assert len(keyring.keys[0]) == GENERATED_KEY_BYTES


def test_every_run_makes_a_different_key(capsys: pytest.CaptureFixture[str]) -> None:
    keys = set()
    for _ in range(3):
        run_keygen()
        keys.add(parse_key_file(capsys.readouterr().out, "<stdout>").keys[0])
    assert len(keys) == 3


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
    out = capsys.readouterr().out
    assert str(target) in out
    assert "p2pcc-key-v1:" not in out  # the key goes to the file only


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
    assert main(["keygen", "--output", str(target)]) == 1
    err = capsys.readouterr().err
    assert err == f"p2pcc: {target}: already exists; refusing to overwrite a key " + (
        "(remove it or choose another --output)\n"
    )
