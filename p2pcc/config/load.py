"""Finding and reading the configuration file.

Search order (first that exists wins): `--config`, `P2PCC_CONFIG`, the user config
dir, /etc/p2pcc/p2pcc.toml.  A file named by `--config` or `P2PCC_CONFIG` must exist;
the other two are optional.  A file that exists but cannot be read is an error, never
skipped: silently falling back to defaults would hide the administrator's settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from p2pcc import paths
from p2pcc.config.host import discover_host_defaults
from p2pcc.config.model import Config
from p2pcc.config.schema import config_from_mapping, parse_config
from p2pcc.core.errors import ConfigError


def load_config(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """The configuration in effect: the first config file found, else defaults."""
    env = os.environ if env is None else env
    host = discover_host_defaults(env)
    found = find_config(explicit, env)
    if found is None:
        return config_from_mapping({}, None, host=host)
    path, named_by = found
    return parse_config(read_config_text(path, named_by), str(path), host=host)


def find_config(explicit: str | None, env: Mapping[str, str]) -> tuple[Path, str | None] | None:
    """The file to read and what named it ("--config", "P2PCC_CONFIG" or None), if any."""
    candidates = paths.config_candidates(explicit, env)
    if explicit:
        return candidates[0], "--config"
    if env.get("P2PCC_CONFIG"):
        return candidates[0], "P2PCC_CONFIG"
    for candidate in candidates:
        if candidate.exists():
            return candidate, None
    return None


def read_config_text(path: Path, named_by: str | None = None) -> str:
    """The text of `path`; unreadable files and bad UTF-8 raise `ConfigError`."""
    try:
        data = path.read_bytes()
    except OSError as error:
        why = error.strerror or str(error)
        raise ConfigError(str(path), "cannot read", _named(why, named_by)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = data[: error.start]
        line = before.count(b"\n") + 1
        column = len(before.rpartition(b"\n")[2].decode(errors="replace")) + 1
        raise ConfigError(str(path), f"line {line}, column {column}", "not valid UTF-8") from None


def _named(why: str, named_by: str | None) -> str:
    return why if named_by is None else f"{why} (named by {named_by})"
