"""Every configuration key with its default and parser, and the checks across keys.

`config_from_mapping` turns what `tomllib` read into a `Config`, or raises a
`ConfigError` naming the file, the key and what is expected (`CombinedConfigError`, one line
per error, when there are several).  Unknown sections and
keys are errors (a typo would otherwise silently keep the default), with a
suggestion from difflib.  Defaults are written as TOML values and go through the same
parsers as the file's values.  Machine-dependent defaults come in a `HostDefaults`;
only when the caller passes none is the running system asked for one.
"""

from __future__ import annotations

import difflib
import itertools
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2pcc.config import pool_values
from p2pcc.config import values as v
from p2pcc.config.host import KEY_FILE_NAME, HostDefaults, discover_host_defaults
from p2pcc.config.model import IDLE_SOURCES, SECTIONS, Config
from p2pcc.core import limits
from p2pcc.core.errors import ConfigError
from p2pcc.core.model import DEFAULT_GOSSIP_PORT  # one default for the key and the wire

DEFAULT_GROUP = "239.192.74.70"
DEFAULT_DISTCCD_PORT = 3632
#: The compilers offered by default, and those `p2pcc fingerprint` shows unless named.
DEFAULT_COMPILERS = ("cc", "c++", "gcc", "g++", "clang", "clang++")
DEFAULTS_LABEL = "defaults"  # stands for the file name when no file was read


@dataclass(frozen=True)
class Key:
    """One key: its default as a TOML value and the parser for the file's value."""

    default: object
    parse: Callable[[object], Any]


def schema(host: HostDefaults) -> dict[str, dict[str, Key]]:
    """Section name to key name to `Key`, in the order of the dataclass fields."""
    path, optional_path = v.absolute_path(host.home), v.optional_path(host.home)
    return {
        "node": {
            "name": Key(host.hostname, v.node_name),
            "id_file": Key(str(host.state_dir / "node-id"), path),
        },
        "gossip": {
            "interface": Key("", v.interface_name),
            "group": Key(DEFAULT_GROUP, v.multicast_group),
            "port": Key(DEFAULT_GOSSIP_PORT, v.integer(1, limits.MAX_PORT)),
            "ttl": Key(1, v.integer(1, 255)),
            "interval": Key(2.0, v.positive_seconds),
            "key_file": Key(str(host.config_dir / KEY_FILE_NAME), optional_path),
            "insecure": Key(False, v.boolean),
            "suspect_after": Key(5.0, v.positive_seconds),
            "dead_after": Key(15.0, v.positive_seconds),
            "forget_after": Key(600.0, v.positive_seconds),
            "seeds": Key([], pool_values.seed_list),
            "networks": Key([], pool_values.pool_networks),
        },
        "distccd": {
            "manage": Key(host.distccd_found, v.boolean),
            "port": Key(DEFAULT_DISTCCD_PORT, v.integer(1, limits.MAX_PORT)),
            "allow": Key([], v.allowed_networks),
            "allow_stock_clients": Key([], v.allowed_networks),
            "jobs": Key(0, _distccd_jobs),
            "nice": Key(10, v.integer(0, 19)),
            "user": Key("distccd", v.user_name),
        },
        "metrics": {
            "job_memory": Key("1GiB", v.parse_size),
            "refresh": Key(1.5, v.positive_seconds),
        },
        "ranking": {
            "tier_ratio": Key(0.8, v.number("a number greater than 0 and at most 1", _fraction)),
            # Both as in core.ranking.RankingPolicy, which refuses anything else.
            "local_weight": Key(0.5, v.number("a number greater than 0", lambda x: x > 0)),
            "lzo": Key(False, v.boolean),
            "max_hosts": Key(16, v.integer(1, limits.MAX_PEERS)),
        },
        "wrapper": {
            "state_max_age": Key(10.0, v.positive_seconds),
            "distcc": Key("distcc", v.program(host.home)),
        },
        "compilers": {
            "offer": Key(list(DEFAULT_COMPILERS), v.program_list(host.home)),
            "extra": Key([], v.program_list(host.home)),
        },
        "proofs": {"enabled": Key(True, v.boolean)},
        "idle": {
            "enabled": Key(False, v.boolean),
            "source": Key("both", _idle_source),
            "active_within": Key(60.0, v.positive_seconds),
            "resume_after": Key(300.0, v.positive_seconds),
            "hand_back": Key(True, v.boolean),
        },
    }


def _fraction(x: float) -> bool:
    return 0 < x <= 1


def _distccd_jobs(value: object) -> int:
    try:
        return v.integer(0, limits.MAX_SLOTS)(value)
    except v.BadValueError:
        raise v.BadValueError(
            f"0 (one job per slot) or an integer from 1 to {limits.MAX_SLOTS}", value
        ) from None


def _idle_source(value: object) -> str:
    if value not in IDLE_SOURCES:
        raise v.BadValueError("one of " + ", ".join(f'"{n}"' for n in IDLE_SOURCES), value)
    return str(value)


# --- from TOML to Config -------------------------------------------------------------------


def parse_config(text: str, path: str, *, host: HostDefaults | None = None) -> Config:
    """Parse TOML `text` read from `path`; a syntax error names its line and column.

    `host` defaults to what `discover_host_defaults(os.environ)` finds.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        position, message = _split_position(str(error), text)
        raise ConfigError(path, position, message) from None
    return config_from_mapping(data, path, host=host)


def _split_position(message: str, text: str) -> tuple[str, str]:
    # Python 3.11's tomllib only puts the position in the message text.
    head, sep, tail = message.rpartition(" (at ")
    if not sep:
        return "syntax", message
    if tail == "end of document)":
        lines = text.rstrip("\n").split("\n")
        return f"line {len(lines)}, column {len(lines[-1]) + 1}", head
    return tail.rstrip(")"), head


class CombinedConfigError(ConfigError):
    """Several mistakes in one file, reported together: one line per error, each naming
    its key, so a file is fixed in one round instead of one error per attempt."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.path, first.key, first.reason)
        self.errors = tuple(errors)

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


def raise_all(errors: list[ConfigError]) -> None:
    """Raise the one error, or all of them as `CombinedConfigError`; nothing if there are none."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise CombinedConfigError(errors)


def config_from_mapping(
    data: Mapping[str, Any], path: str | None, *, host: HostDefaults | None = None
) -> Config:
    """A `Config` from a parsed TOML document; `path` None means defaults only."""
    if host is None:
        host = discover_host_defaults(os.environ)
    label = DEFAULTS_LABEL if path is None else path
    keys = schema(host)
    errors = _unknown_names(data, keys, label)
    runtime_dir = host.runtime_dir  # what an error leaves here is never used
    try:
        runtime_dir = _runtime_dir(data, host, label)
    except ConfigError as error:
        errors.append(error)
    sections = {}
    for name, section_keys in keys.items():
        values = _parse_section(name, data.get(name, {}), section_keys, label, errors)
        sections[name] = values
    raise_all(errors)
    _insecure_means_no_key(data, sections)
    source = None if path is None else Path(path)
    config = Config(
        runtime_dir=runtime_dir,
        source=source,
        **{name: SECTIONS[name](**values) for name, values in sections.items()},
    )
    check_relations(config, label)
    return config


def _insecure_means_no_key(data: Mapping[str, Any], sections: dict[str, dict[str, Any]]) -> None:
    """`gossip.insecure = true` drops the default key file: an unkeyed pool was asked for.
    A key file set explicitly stays, and `check_relations` refuses the contradiction."""
    gossip = sections["gossip"]
    if gossip["insecure"] and "key_file" not in data.get("gossip", {}):
        gossip["key_file"] = None


def _runtime_dir(data: Mapping[str, Any], host: HostDefaults, label: str) -> Path:
    """`P2PCC_RUNTIME_DIR`, else the file's `runtime_dir`, else the host's default."""
    from_file = None
    if "runtime_dir" in data:
        # Validated even when the environment wins, so a broken file is never hidden.
        parse = v.absolute_path(host.home)
        from_file = _parse_value(label, "runtime_dir", parse, data["runtime_dir"])
    return host.runtime_dir_override or from_file or host.runtime_dir


def _parse_section(
    name: str, table: object, keys: dict[str, Key], label: str, errors: list[ConfigError]
) -> dict[str, Any]:
    """The section's parsed values; what does not parse goes to `errors` instead."""
    if not isinstance(table, dict):
        expected = f"expected a table ([{name}]), got {v.toml_value(table)}"
        errors.append(ConfigError(label, name, expected))
        return {}
    values = {}
    for key, spec in keys.items():
        try:
            values[key] = _parse_value(
                label, f"{name}.{key}", spec.parse, table.get(key, spec.default)
            )
        except ConfigError as error:
            errors.append(error)
    return values


def _parse_value(label: str, key: str, parse: Callable[[object], Any], value: object) -> Any:
    try:
        return parse(value)
    except v.BadValueError as error:
        where = key if error.index is None else f"{key}[{error.index}]"
        shown = v.toml_value(error.value)
        raise ConfigError(label, where, f"expected {error.expected}, got {shown}") from None


# --- unknown names -------------------------------------------------------------------------


def _unknown_names(
    data: Mapping[str, Any], keys: dict[str, dict[str, Key]], label: str
) -> list[ConfigError]:
    """An error for every unknown section and key, in the file's order."""
    errors = []
    for name, table in data.items():
        if name == "runtime_dir":
            continue
        if name not in keys:
            errors.append(ConfigError(label, name, _unknown_top_level(name, table, keys)))
        elif isinstance(table, dict):
            errors += [
                ConfigError(label, f"{name}.{key}", _unknown_key(name, key, keys))
                for key in table
                if key not in keys[name]
            ]
    return errors


def _unknown_top_level(name: str, value: object, keys: dict[str, dict[str, Key]]) -> str:
    if isinstance(value, dict):
        close = difflib.get_close_matches(name, list(keys), n=1)
        hint = f"did you mean {close[0]}?" if close else "the sections are " + ", ".join(keys)
        return f"unknown section ({hint})"
    owners = [section for section, section_keys in keys.items() if name in section_keys]
    if owners:
        return f"unknown key (did you mean {' or '.join(f'{s}.{name}' for s in owners)}?)"
    close = difflib.get_close_matches(name, ["runtime_dir"], n=1)
    if close:
        return f"unknown key (did you mean {close[0]}?)"
    return "unknown key (the only top-level key is runtime_dir; the rest go in sections)"


def _unknown_key(section: str, key: str, keys: dict[str, dict[str, Key]]) -> str:
    close = difflib.get_close_matches(key, list(keys[section]), n=1)
    if close:
        return f"unknown key (did you mean {section}.{close[0]}?)"
    owners = [name for name, section_keys in keys.items() if key in section_keys]
    if owners:
        return f"unknown key (did you mean {' or '.join(f'{s}.{key}' for s in owners)}?)"
    return f"unknown key ([{section}] has {', '.join(keys[section])})"


# --- across keys ---------------------------------------------------------------------------


def check_relations(config: Config, label: str) -> None:
    """Reject values that are valid alone but contradict each other (all at once)."""
    errors: list[ConfigError] = []
    gossip = config.gossip
    chain = [
        ("interval", gossip.interval),
        ("suspect_after", gossip.suspect_after),
        ("dead_after", gossip.dead_after),
        ("forget_after", gossip.forget_after),
    ]
    for (name, value), (next_name, next_value) in itertools.pairwise(chain):
        if value >= next_value:
            errors.append(
                ConfigError(
                    label,
                    f"gossip.{name}",
                    f"expected less than gossip.{next_name} ({next_value!r}), got {value!r}",
                )
            )
    if config.wrapper.state_max_age <= gossip.interval:
        # The daemon rewrites the state file every gossip interval; a shorter limit
        # would make every compile think the daemon is down.
        errors.append(
            ConfigError(
                label,
                "wrapper.state_max_age",
                f"expected more than gossip.interval ({gossip.interval!r}), "
                f"got {config.wrapper.state_max_age!r}",
            )
        )
    errors += [
        ConfigError(label, key, f"expected {reason}")
        for key, reason in pool_values.family_mismatches(
            gossip.group, gossip.seeds, gossip.networks
        )
    ]
    if gossip.insecure and gossip.key_file is not None:
        # Both at once would leave a reader unsure whether the pool is keyed.
        errors.append(
            ConfigError(
                label,
                "gossip.insecure",
                "expected false when gossip.key_file is set (a keyed pool is not insecure; "
                'set key_file = "" for an unkeyed pool), got true',
            )
        )
    idle = config.idle
    if idle.resume_after < idle.active_within:
        # Resuming while the desktop still counts as in use would pause again at once.
        errors.append(
            ConfigError(
                label,
                "idle.resume_after",
                f"expected at least idle.active_within ({idle.active_within!r}), "
                f"got {idle.resume_after!r}",
            )
        )
    raise_all(errors)
