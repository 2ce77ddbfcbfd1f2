"""Where p2pcc keeps things on disk, with the environment overrides tests and admins use.

Every function takes the environment as a mapping so callers (and tests) decide what
it is; none of them creates a directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SYSTEM_CONFIG = Path("/etc/p2pcc/p2pcc.toml")
SYSTEM_RUNTIME_DIR = Path("/run/p2pcc")


def _is_root() -> bool:
    return os.geteuid() == 0


def cache_dir(env: Mapping[str, str]) -> Path:
    """Fingerprint cache and calibration results: `P2PCC_CACHE_DIR`, else the user cache dir."""
    override = env.get("P2PCC_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs  # costs ~17 ms: only paid when no override is given

    return Path(platformdirs.user_cache_dir("p2pcc", appauthor=False))


def runtime_dir(env: Mapping[str, str]) -> Path:
    """Control socket and state file: `P2PCC_RUNTIME_DIR`, else /run/p2pcc for root,
    else the user runtime dir ($XDG_RUNTIME_DIR/p2pcc)."""
    override = env.get("P2PCC_RUNTIME_DIR")
    if override:
        return Path(override)
    if _is_root():
        return SYSTEM_RUNTIME_DIR
    import platformdirs

    return Path(platformdirs.user_runtime_dir("p2pcc", appauthor=False))


def config_candidates(explicit: str | None, env: Mapping[str, str]) -> list[Path]:
    """Config files in search order: --config, `P2PCC_CONFIG`, user config dir, /etc.

    An explicit path or `P2PCC_CONFIG` must exist (the caller reports it missing);
    the other two are used only when present.
    """
    if explicit:
        return [Path(explicit)]
    if env.get("P2PCC_CONFIG"):
        return [Path(env["P2PCC_CONFIG"])]
    import platformdirs

    user = Path(platformdirs.user_config_dir("p2pcc", appauthor=False)) / "p2pcc.toml"
    return [user, SYSTEM_CONFIG]
