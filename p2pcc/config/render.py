"""The configuration written back as TOML, every key included, for `p2pcc config`.

The output parses back to the same `Config`; only strings, numbers, bools and lists
of those occur, so a few lines of formatting replace a TOML-writing dependency.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Iterable
from pathlib import Path

from p2pcc.config.model import SECTIONS, Config
from p2pcc.config.values import format_size, toml_string, toml_value
from p2pcc.core.seeds import Seed

#: Keys shown in a friendlier spelling than their typed value.
_SPELLINGS: dict[str, Callable[[object], object]] = {
    "metrics.job_memory": lambda count: format_size(count) if isinstance(count, int) else count,
}


def _as_toml(value: object) -> object:
    if value is None:
        return ""  # an optional path that is not set
    if isinstance(value, Path | Seed | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    if isinstance(value, tuple):
        return [_as_toml(item) for item in value]
    return value


def _comment(text: str) -> str:
    # A newline in a path would end the comment and corrupt the document.
    safe = text if text.isprintable() else toml_string(text)
    return f"# {safe}"


def render_config(config: Config, notes: Iterable[str] = ()) -> str:
    """`config` as a TOML document with a header naming its source, then `notes`."""
    source = "defaults (no configuration file found)" if config.source is None else config.source
    lines = [
        _comment("p2pcc configuration in effect"),
        _comment(f"source: {source}"),
        *(_comment(note) for note in notes),
        "",
        f"runtime_dir = {toml_value(_as_toml(config.runtime_dir))}",
    ]
    for name in SECTIONS:
        section = getattr(config, name)
        lines += ["", f"[{name}]"]
        for field in dataclasses.fields(section):
            value = getattr(section, field.name)
            spell = _SPELLINGS.get(f"{name}.{field.name}", _as_toml)
            lines.append(f"{field.name} = {toml_value(spell(value))}")
    return "\n".join(lines) + "\n"
