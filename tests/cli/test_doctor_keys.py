"""doctor's key check: an unkeyed pool fails even when asked for, and so does every key
file the daemon would refuse, each with its fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from p2pcc.cli.doctor_checks import Level
from p2pcc.cli.doctor_keys import check_pool_key
from p2pcc.config import HostDefaults, config_from_mapping
from p2pcc.config.model import Config
from p2pcc.core.auth import format_key_line


def config(tmp_path: Path, **gossip: object) -> Config:
    host = HostDefaults(
        hostname="ws1",
        home=tmp_path,
        distccd_found=False,
        runtime_dir=tmp_path / "run",
        runtime_dir_override=None,
        state_dir=tmp_path / "state",
        config_dir=tmp_path,
    )
    return config_from_mapping({"gossip": gossip}, None, host=host)


def key(tmp_path: Path, mode: int = 0o600, text: str = "") -> Path:
    path = tmp_path / "cluster.key"
    path.write_text(text or format_key_line(bytes(32)) + "\n")
    path.chmod(mode)
    return path


def test_an_insecure_pool_fails_with_the_way_to_a_key(tmp_path: Path) -> None:
    finding = check_pool_key(config(tmp_path, insecure=True), None)
    assert finding.level is Level.FAIL
    assert finding.line() == (
        "FAIL  key: the pool runs without a key (gossip.insecure = true): any machine on the "
        "network can then join the pool, receive your preprocessed sources and send back "
        "object files your builds link; fix: `p2pcc keygen` on one machine and `p2pcc join` "
        "on the others, then remove gossip.insecure from the configuration and reload the "
        "daemons"
    )


def test_a_running_insecure_daemon_fails_too(tmp_path: Path) -> None:
    key(tmp_path)  # the file now has a key, the running daemon not yet
    finding = check_pool_key(config(tmp_path), {"node": {"insecure": True}})
    assert finding.level is Level.FAIL
    assert "runs without a key" in finding.message


def test_a_good_key_is_ok(tmp_path: Path) -> None:
    path = key(tmp_path)
    finding = check_pool_key(config(tmp_path), {"node": {"insecure": False}})
    assert finding.line() == f"ok    key: {path} (mode 0600) authenticates the pool"


def test_a_missing_key_fails_with_keygen_and_join(tmp_path: Path) -> None:
    finding = check_pool_key(config(tmp_path), None)
    assert finding.level is Level.FAIL
    assert (
        finding.message
        == f"no cluster key at {tmp_path / 'cluster.key'}: the daemon refuses to start"
    )
    assert "`p2pcc keygen`" in finding.fix
    assert "`p2pcc join`" in finding.fix


def test_no_key_setting_fails(tmp_path: Path) -> None:
    finding = check_pool_key(config(tmp_path, key_file=""), None)
    assert finding.level is Level.FAIL
    assert "the daemon refuses to start" in finding.message


def test_a_readable_key_fails_with_the_chmod(tmp_path: Path) -> None:
    path = key(tmp_path, 0o640)
    assert check_pool_key(config(tmp_path), None).line() == (
        f"FAIL  key: {path} has mode 0640: others may read the cluster key; fix: `chmod 600 {path}`"
    )


def test_a_link_fails_as_the_daemon_refuses_it(tmp_path: Path) -> None:
    real = key(tmp_path)
    (tmp_path / "link.key").symlink_to(real)
    finding = check_pool_key(config(tmp_path, key_file=str(tmp_path / "link.key")), None)
    assert finding.level is Level.FAIL
    assert "symbolic link" in finding.message


def test_a_broken_key_file_fails(tmp_path: Path) -> None:
    key(tmp_path, text="nonsense\n")
    finding = check_pool_key(config(tmp_path), None)
    assert finding.level is Level.FAIL
    assert "line 1: expected" in finding.message


@pytest.mark.skipif(os.geteuid() != 0, reason="needs another user to look")
def test_a_key_this_user_may_not_read_is_only_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key(tmp_path)
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    assert check_pool_key(config(tmp_path), None).level is Level.WARN
