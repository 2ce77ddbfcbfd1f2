"""`p2pcc join`: the token from standard input becomes a private key file, atomically,
never through a link, and the running daemon is told to reload."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from p2pcc.cli import main
from p2pcc.config.key_file import read_key_file
from p2pcc.core.auth import format_key_line, parse_key_file
from p2pcc.core.key_token import encode_token

KEY, OTHER = bytes(range(32)), bytes(range(1, 33))


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    """A configuration naming a key file in a directory of its own; (config, key file)."""
    key_file = tmp_path / "keys" / "cluster.key"
    config = tmp_path / "p2pcc.toml"
    config.write_text(f'runtime_dir = "{tmp_path / "run"}"\n[gossip]\nkey_file = "{key_file}"\n')
    return config, key_file


def join(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    config: Path,
    stdin: str,
    *argv: str,
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    status = main(["join", "--config", str(config), *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_piped_token_becomes_a_private_key_file(
    setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, key_file = setup
    previous = os.umask(0)
    try:
        status, out, err = join(monkeypatch, capsys, config, encode_token(KEY) + "\n")
    finally:
        os.umask(previous)
    assert (status, err) == (0, "")
    assert out == (
        f"installed the pool's key in {key_file} (mode 0600)\n"
        "no daemon is running here: start it and it will use the key\n"
    )
    status_ = key_file.lstat()
    assert stat.S_ISREG(status_.st_mode)
    assert stat.S_IMODE(status_.st_mode) == 0o600
    assert status_.st_uid == os.geteuid()
    assert read_key_file(key_file, (0, os.geteuid())).keys == (KEY,)  # the daemon takes it
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["cluster.key"]  # no leftovers


def test_the_same_key_again_changes_nothing(
    setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, key_file = setup
    join(monkeypatch, capsys, config, encode_token(KEY))
    before = key_file.stat()
    status, out, _ = join(monkeypatch, capsys, config, encode_token(KEY))
    assert (status, out) == (0, f"{key_file} already holds this key; nothing to do\n")
    after = key_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_different_key_is_kept_unless_replace(
    setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, key_file = setup
    join(monkeypatch, capsys, config, encode_token(KEY))
    status, out, err = join(monkeypatch, capsys, config, encode_token(OTHER))
    assert (status, out) == (1, "")
    assert err == (
        f"p2pcc: {key_file}: holds another key (or is not a valid, private key file); "
        "`p2pcc join --replace` replaces it\n"
    )
    assert parse_key_file(key_file.read_text(), "k").keys == (KEY,)
    inode = key_file.stat().st_ino
    status, out, _ = join(monkeypatch, capsys, config, encode_token(OTHER), "--replace")
    assert status == 0
    assert out.startswith(f"replaced the pool's key in {key_file}")
    assert parse_key_file(key_file.read_text(), "k").keys == (OTHER,)
    assert key_file.stat().st_ino != inode  # a new file renamed into place: atomic


def test_a_symlink_in_place_is_never_written_through(
    setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, key_file = setup
    victim = key_file.parent.parent / "victim"
    victim.write_text("precious\n")
    key_file.parent.mkdir()
    key_file.symlink_to(victim)
    status, _, err = join(monkeypatch, capsys, config, encode_token(KEY))
    assert status == 1
    assert "is a symbolic link, which join never writes through" in err
    status, _, _ = join(monkeypatch, capsys, config, encode_token(KEY), "--replace")
    assert status == 0
    assert victim.read_text() == "precious\n"
    assert not key_file.is_symlink()
    assert parse_key_file(key_file.read_text(), "k").keys == (KEY,)


def test_a_loose_file_with_the_same_key_needs_replace(
    setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, key_file = setup
    key_file.parent.mkdir()
    key_file.write_text(format_key_line(KEY) + "\n")
    key_file.chmod(0o644)  # the daemon refuses it; join does not call it installed
    assert join(monkeypatch, capsys, config, encode_token(KEY))[0] == 1
    assert join(monkeypatch, capsys, config, encode_token(KEY), "--replace")[0] == 0
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_a_token_on_the_command_line_is_refused_without_echo(
    setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, key_file = setup
    token = encode_token(KEY)
    status, out, err = join(monkeypatch, capsys, config, "", token)
    assert (status, out) == (1, "")
    assert "stays in shell history" in err
    assert token[12:] not in err
    assert not key_file.exists()


def test_a_damaged_token_installs_nothing(
    setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, key_file = setup
    status, _, err = join(monkeypatch, capsys, config, encode_token(KEY)[:-5] + "\n")
    assert status == 1
    assert err.startswith("p2pcc: the token is damaged or incomplete")
    assert not key_file.exists()


def test_output_installs_elsewhere(
    setup: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, key_file = setup
    elsewhere = tmp_path / "other.key"
    status, out, _ = join(monkeypatch, capsys, config, encode_token(KEY), "-o", str(elsewhere))
    assert status == 0
    assert out == f"installed the pool's key in {elsewhere} (mode 0600)\n"  # no reload
    assert not key_file.exists()


FAKE_DAEMON = """
import signal, socket, sys
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1])
listener.listen()
signal.signal(signal.SIGHUP, lambda *_: sys.exit(42))
print("ready", flush=True)
signal.pause()
"""


def test_a_running_daemon_is_told_to_reload(
    setup: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, _ = setup
    (tmp_path / "run").mkdir()
    with subprocess.Popen(
        [sys.executable, "-c", FAKE_DAEMON, str(tmp_path / "run" / "control")],
        stdout=subprocess.PIPE,
        text=True,
    ) as daemon:
        try:
            assert daemon.stdout is not None
            assert daemon.stdout.readline() == "ready\n"
            status, out, _ = join(monkeypatch, capsys, config, encode_token(KEY))
            assert status == 0
            assert f"told the daemon (pid {daemon.pid}) to reload its key" in out
            assert daemon.wait(timeout=10) == 42  # it got SIGHUP
        finally:
            daemon.kill()
