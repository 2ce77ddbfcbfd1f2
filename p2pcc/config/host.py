"""Defaults that depend on the machine and the environment, gathered in one place.

The schema is pure: it takes a `HostDefaults` instead of asking the system, so tests
pin every default.  `discover_host_defaults` is the one function that looks.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from p2pcc import paths
from p2pcc.core import limits

SYSTEM_STATE_DIR = Path("/var/lib/p2pcc")
#: The cluster key's file name in the configuration directory (`gossip.key_file`'s default).
KEY_FILE_NAME = "cluster.key"


@dataclass(frozen=True)
class HostDefaults:
    """What the defaults of `runtime_dir`, `node.*`, `gossip.key_file` and `distccd.manage`
    come from."""

    hostname: str
    home: Path  # what a leading "~/" in a path means
    distccd_found: bool
    runtime_dir: Path  # used when neither P2PCC_RUNTIME_DIR nor the file sets one
    runtime_dir_override: Path | None  # P2PCC_RUNTIME_DIR, which beats the file
    state_dir: Path  # where the persistent node id lives by default
    config_dir: Path  # where the cluster key lives by default


def fit_node_name(hostname: str) -> str:
    """`hostname` cut to a valid node name (never empty, at most MAX_NODE_NAME bytes)."""
    name = "".join(char for char in hostname if char.isprintable())
    name = name.encode()[: limits.MAX_NODE_NAME].decode(errors="ignore")
    return name or "localhost"


def _state_dir() -> Path:
    if os.geteuid() == 0:
        return SYSTEM_STATE_DIR
    import platformdirs

    return Path(platformdirs.user_state_dir("p2pcc", appauthor=False))


def _config_dir() -> Path:
    if os.geteuid() == 0:
        return paths.SYSTEM_CONFIG.parent
    import platformdirs

    return Path(platformdirs.user_config_dir("p2pcc", appauthor=False))


def discover_host_defaults(env: Mapping[str, str]) -> HostDefaults:
    """Look at this machine: hostname, home, distccd on `env`'s PATH, runtime, state and
    configuration dirs."""
    override = env.get("P2PCC_RUNTIME_DIR")
    without_override = {k: v for k, v in env.items() if k != "P2PCC_RUNTIME_DIR"}
    return HostDefaults(
        hostname=fit_node_name(socket.gethostname()),
        home=Path(env["HOME"]) if env.get("HOME") else Path.home(),
        distccd_found=shutil.which("distccd", path=env.get("PATH")) is not None,
        runtime_dir=paths.runtime_dir(without_override),
        runtime_dir_override=Path(override) if override else None,
        state_dir=_state_dir(),
        config_dir=_config_dir(),
    )
