"""Secure by default in the daemon: no start without a key unless asked, a warning every
hour while unkeyed, and a key file others may read refused at start and on reload."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import pytest
import trio
import trio.testing

from p2pcc.cli import daemon_cmd, main
from p2pcc.config import load_config
from p2pcc.config.key_file import no_key_remedy
from p2pcc.core.auth import Keyring, format_key_line
from p2pcc.core.errors import WireFormatError
from p2pcc.core.wire import decode
from p2pcc.daemon import run
from p2pcc.daemon.pool_security import (
    INSECURE_WARNING,
    INSECURE_WARNING_PERIOD,
    serve_insecure_warnings,
    warn_wider_pool,
)
from tests.core.local_nodes import WALL, make_node

OLD, NEW = b"the-running-cluster-key-0123", b"the-reloaded-cluster-key-4567"


def write_config(tmp_path: Path, gossip: str) -> Path:
    path = tmp_path / "p2pcc.toml"
    path.write_text(
        f'runtime_dir = "{tmp_path / "run"}"\n'
        f'[node]\nid_file = "{tmp_path / "node-id"}"\n[gossip]\n{gossip}'
    )
    return path


def write_key(path: Path, key: bytes, mode: int = 0o600) -> Path:
    path.write_text(format_key_line(key) + "\n")
    path.chmod(mode)
    return path


def daemon_start(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    """`p2pcc daemon --config FILE` as the command line runs it; exit status and stderr."""
    monkeypatch.setattr(daemon_cmd, "configure_logging", lambda verbose: None)
    status = main(["daemon", "--config", str(config)])
    return status, capsys.readouterr().err


# --- start ---------------------------------------------------------------------------------


def test_the_daemon_refuses_to_start_without_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "cluster.key"
    status, err = daemon_start(write_config(tmp_path, f'key_file = "{key}"\n'), capsys, monkeypatch)
    assert (status, err) == (1, f"p2pcc: {key}: gossip.key_file: no such file; {no_key_remedy()}\n")
    assert not (tmp_path / "run").exists()  # stopped before anything was set up


def test_an_empty_key_file_setting_is_refused_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, 'key_file = ""\n')
    status, err = daemon_start(config, capsys, monkeypatch)
    assert status == 1
    assert err.startswith(f'p2pcc: {config}: gossip.key_file: "" (no key) refuses to start; ')
    assert "`p2pcc keygen`" in err
    assert "gossip.insecure = true" in err


def test_a_key_file_others_may_read_is_refused_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = write_key(tmp_path / "cluster.key", OLD, 0o644)
    status, err = daemon_start(write_config(tmp_path, f'key_file = "{key}"\n'), capsys, monkeypatch)
    assert status == 1
    assert err == (
        f"p2pcc: {key}: gossip.key_file: has mode 0644: other users can read the cluster key "
        f"and join the pool; run `chmod 600 {key}`\n"
    )


# --- reload --------------------------------------------------------------------------------


def signs_with(node_datagram: bytes, key: bytes) -> bool:
    try:
        decode(node_datagram, Keyring([key]))
    except WireFormatError:
        return False
    return True


def test_reload_keeps_the_running_key_when_the_new_file_is_not_private(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = write_key(tmp_path / "cluster.key", OLD)
    config = load_config(str(write_config(tmp_path, f'key_file = "{key}"\n')), {})
    node = make_node(1)
    node.set_keyring(Keyring([OLD]))
    write_key(key, NEW, 0o640)
    with caplog.at_level(logging.ERROR, logger="p2pcc.daemon"):
        assert run._reload(node, config) is config
    assert "has mode 0640" in caplog.text
    assert f"run `chmod 600 {key}`" in caplog.text
    assert "reload refused, keeping the running configuration" in caplog.text
    outgoing = node.datagram_to_send(0.0, WALL)
    assert outgoing is not None
    assert signs_with(outgoing.data, OLD)
    key.chmod(0o600)  # fixed: the next reload takes the new key
    assert run._reload(node, config) is not config
    outgoing = node.datagram_to_send(10.0, WALL + 10)
    assert outgoing is not None
    assert signs_with(outgoing.data, NEW)


def test_reload_refuses_to_drop_the_key_unless_insecure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = write_key(tmp_path / "cluster.key", OLD)
    path = write_config(tmp_path, f'key_file = "{key}"\n')
    config = load_config(str(path), {})
    node = make_node(1)
    node.set_keyring(Keyring([OLD]))
    key.unlink()
    assert run._reload(node, config) is config
    assert node.statistics(0.0).authenticated
    write_config(tmp_path, "insecure = true\n")
    with caplog.at_level(logging.WARNING, logger="p2pcc.daemon"):
        assert run._reload(node, config) is not config
    assert not node.statistics(0.0).authenticated
    assert INSECURE_WARNING in caplog.text  # said at once, not an hour later


# --- the hourly warning --------------------------------------------------------------------


async def test_an_unkeyed_pool_is_warned_about_at_start_and_every_hour(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    node = make_node(1)  # no key
    warned_at: list[float] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == INSECURE_WARNING and record.levelno == logging.WARNING:
                warned_at.append(trio.current_time())

    recorder = Recorder()
    logging.getLogger("p2pcc.daemon").addHandler(recorder)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_insecure_warnings, node)
            await trio.sleep(2.5 * INSECURE_WARNING_PERIOD)
            node.set_keyring(Keyring([NEW]))  # a reload gave the pool a key
            await trio.sleep(2 * INSECURE_WARNING_PERIOD)
            nursery.cancel_scope.cancel()
    finally:
        logging.getLogger("p2pcc.daemon").removeHandler(recorder)
    assert warned_at == [0.0, 3600.0, 7200.0]


async def test_a_keyed_pool_is_never_warned_about(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    node = make_node(1)
    node.set_keyring(Keyring([OLD]))
    with caplog.at_level(logging.WARNING, logger="p2pcc.daemon"):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_insecure_warnings, node)
            await trio.sleep(3 * INSECURE_WARNING_PERIOD)
            nursery.cancel_scope.cancel()
    assert INSECURE_WARNING not in caplog.text


def test_the_status_document_says_whether_the_pool_is_insecure() -> None:
    node = make_node(1)
    assert node.snapshot(0.0, WALL)["node"]["insecure"] is True
    node.set_keyring(Keyring([OLD]))
    assert node.snapshot(0.0, WALL)["node"]["insecure"] is False


def test_gossip_networks_are_named_loudly_at_start(caplog: pytest.LogCaptureFixture) -> None:
    ten2, ten3 = ipaddress.ip_network("10.2.0.0/16"), ipaddress.ip_network("10.3.0.0/16")
    with caplog.at_level(logging.WARNING, logger="p2pcc.daemon"):
        warn_wider_pool((), (), keyed=False)
        assert caplog.messages == []
        warn_wider_pool((ten2,), (), keyed=True)
        warn_wider_pool(
            (ten2, ten3),
            (ipaddress.ip_network("10.2.0.0/16"), ipaddress.ip_network("fd00::/16")),
            keyed=False,
        )
    keyed, unkeyed, left_out = caplog.messages
    assert "peers announcing addresses in 10.2.0.0/16 are accepted as members" in keyed
    assert keyed.endswith("the door admits only live members")
    assert "10.2.0.0/16, 10.3.0.0/16" in unkeyed
    assert unkeyed.endswith("anyone who can reach this machine from there can join and send jobs")
    assert left_out.startswith("distccd.allow leaves out gossip.networks 10.3.0.0/16:")
