"""The systemd units in systemd/: valid for systemd, and carrying the settings we rely on."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from p2pcc.daemon.distccd.supervisor import SupervisorTiming

UNITS = Path(__file__).resolve().parent.parent / "systemd"
SYSTEM_UNIT = UNITS / "p2pcc.service"
USER_UNIT = UNITS / "p2pcc-user.service"


def read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys keep their case
    parser.read_string(path.read_text(), str(path))
    return parser


def seconds(value: str) -> float:
    assert value.endswith("s"), value
    return float(value[:-1])


def test_system_unit_settings() -> None:
    service = read_unit(SYSTEM_UNIT)["Service"]
    assert service["ExecStart"] == "/usr/local/bin/p2pcc daemon"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    expected = {
        "Restart": "on-failure",
        "KillMode": "mixed",
        "RuntimeDirectory": "p2pcc",
        "RuntimeDirectoryMode": "0755",
        "StateDirectory": "p2pcc",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "read-only",
        "PrivateTmp": "yes",
        "Environment": "P2PCC_CACHE_DIR=/var/cache/p2pcc",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert "User" not in service  # root, so that distccd can drop to its own user
    assert "ProtectProc" not in service  # would hide distccd's processes from the daemon
    # bubblewrap sandboxes every job in these namespaces (docs/distccd.md).
    assert set(service["RestrictNamespaces"].split()) >= {"user", "mnt", "pid", "net", "ipc"}
    assert "SystemCallFilter" not in service
    capabilities = set(service["CapabilityBoundingSet"].split())
    assert {"CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"} <= capabilities


def test_stopping_leaves_time_to_drain_distccd() -> None:
    timing = SupervisorTiming()
    needed = timing.drain_timeout + 2 * timing.term_timeout
    for unit in (SYSTEM_UNIT, USER_UNIT):
        assert seconds(read_unit(unit)["Service"]["TimeoutStopSec"]) >= needed + 5


def test_user_unit_settings() -> None:
    unit = read_unit(USER_UNIT)
    service = unit["Service"]
    assert service["ExecStart"] == "%h/.local/bin/p2pcc daemon"
    assert (service["KillMode"], service["Restart"]) == ("mixed", "on-failure")
    assert "User" not in service
    assert unit["Install"]["WantedBy"] == "default.target"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
@pytest.mark.parametrize(("unit", "user"), [(SYSTEM_UNIT, False), (USER_UNIT, True)])
def test_systemd_accepts_the_unit(tmp_path: Path, unit: Path, user: bool) -> None:
    # verify insists that ExecStart exists: point it at a program that does.
    text = unit.read_text().replace("%h/.local/bin/p2pcc", "/usr/local/bin/p2pcc")
    copy = tmp_path / unit.name
    copy.write_text(text.replace("/usr/local/bin/p2pcc", sys.executable))
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    command = ["systemd-analyze", *(["--user"] if user else []), "verify", str(copy)]
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    # verify exits 0 on unknown keys and bad values, so its warnings must be absent too.
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")
