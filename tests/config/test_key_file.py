"""`load_keyring`: a pool has a key unless the configuration says otherwise, and the key
file is refused unless it is private (the daemon, `config --check` and doctor share it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from p2pcc.config import HostDefaults, config_from_mapping
from p2pcc.config.key_file import (
    MAX_KEY_FILE_BYTES,
    load_keyring,
    no_key_remedy,
    read_key_file,
)
from p2pcc.config.model import Config
from p2pcc.core.auth import format_key_line
from p2pcc.core.errors import ConfigError

KEY = bytes(range(32))
NOBODY = 65534


def host(tmp_path: Path) -> HostDefaults:
    return HostDefaults(
        hostname="ws1",
        home=tmp_path,
        distccd_found=False,
        runtime_dir=tmp_path / "run",
        runtime_dir_override=None,
        state_dir=tmp_path / "state",
        config_dir=tmp_path / "etc",
    )


def config(tmp_path: Path, **gossip: object) -> Config:
    return config_from_mapping({"gossip": gossip}, None, host=host(tmp_path))


def private_key(path: Path, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_key_line(KEY) + "\n")
    path.chmod(mode)
    return path


def refusal(cfg: Config) -> str:
    with pytest.raises(ConfigError) as caught:
        load_keyring(cfg)
    return str(caught.value)


def test_the_default_key_file_is_read(tmp_path: Path) -> None:
    private_key(tmp_path / "etc" / "cluster.key")
    assert load_keyring(config(tmp_path)).keys == (KEY,)


def test_a_missing_key_names_both_ways_out(tmp_path: Path) -> None:
    message = refusal(config(tmp_path))
    assert message == (
        f"{tmp_path / 'etc' / 'cluster.key'}: gossip.key_file: no such file; {no_key_remedy()}"
    )
    assert "`p2pcc keygen`" in message
    assert "`p2pcc join`" in message
    assert "gossip.insecure = true" in message
    assert "receive your preprocessed sources" in message  # what the way out costs


def test_no_key_without_insecure_is_refused(tmp_path: Path) -> None:
    message = refusal(config(tmp_path, key_file=""))
    assert message.startswith('defaults: gossip.key_file: "" (no key) refuses to start; ')
    assert "p2pcc join" in message


def test_insecure_gives_an_empty_keyring(tmp_path: Path) -> None:
    private_key(tmp_path / "etc" / "cluster.key")  # there, but not asked for
    assert not load_keyring(config(tmp_path, insecure=True))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o610, 0o601, 0o660])
def test_group_or_other_bits_are_refused_with_the_chmod(tmp_path: Path, mode: int) -> None:
    path = private_key(tmp_path / "etc" / "cluster.key", mode)
    assert refusal(config(tmp_path)) == (
        f"{path}: gossip.key_file: has mode {mode:04o}: other users can read the cluster "
        f"key and join the pool; run `chmod 600 {path}`"
    )


def test_owner_only_modes_are_fine(tmp_path: Path) -> None:
    path = private_key(tmp_path / "etc" / "cluster.key", 0o400)
    assert load_keyring(config(tmp_path)).keys == (KEY,)
    path.chmod(0o700)
    assert load_keyring(config(tmp_path)).keys == (KEY,)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_a_key_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = private_key(tmp_path / "etc" / "cluster.key")
    os.chown(path, NOBODY, NOBODY)
    message = refusal(config(tmp_path))
    assert message.startswith(f"{path}: gossip.key_file: owned by ")
    assert f"run `chown root {path}`" in message
    # The owner check, for a non-root reader too: only root and the reader are trusted.
    with pytest.raises(ConfigError, match="owned by"):
        read_key_file(path, (0, 1000))


def test_a_link_is_never_followed(tmp_path: Path) -> None:
    real = private_key(tmp_path / "real.key")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "cluster.key").symlink_to(real)
    assert "is a symbolic link, which is never followed" in refusal(config(tmp_path))


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.mkfifo(tmp_path / "etc" / "cluster.key", 0o600)
    assert "is not a regular file" in refusal(config(tmp_path))


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "etc" / "cluster.key").mkdir(parents=True, mode=0o700)
    assert "is not a regular file" in refusal(config(tmp_path))


def test_a_huge_file_is_not_read_whole(tmp_path: Path) -> None:
    path = private_key(tmp_path / "etc" / "cluster.key")
    path.write_text("#" * (MAX_KEY_FILE_BYTES + 10))
    assert f"larger than {MAX_KEY_FILE_BYTES} bytes" in refusal(config(tmp_path))


def test_binary_content_is_refused(tmp_path: Path) -> None:
    path = private_key(tmp_path / "etc" / "cluster.key")
    path.write_bytes(b"\xff\xfe key")
    assert "not a text key file" in refusal(config(tmp_path))


def test_an_invalid_key_file_is_refused(tmp_path: Path) -> None:
    path = private_key(tmp_path / "etc" / "cluster.key")
    path.write_text("not a key\n")
    assert refusal(config(tmp_path)).startswith(f"{path}: key: line 1: expected")
