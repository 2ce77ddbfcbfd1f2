"""`render_config`: the configuration written as TOML reads back as the same Config."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from p2pcc.config import HostDefaults, config_from_mapping, parse_config, render_config
from p2pcc.config.model import SECTIONS

HOST = HostDefaults(
    hostname="ws1",
    home=Path("/home/ann"),
    distccd_found=False,
    runtime_dir=Path("/run/p2pcc"),
    runtime_dir_override=None,
    state_dir=Path("/var/lib/p2pcc"),
    config_dir=Path("/etc/p2pcc"),
)

names = st.text(st.characters(codec="utf-8", exclude_categories=("C", "Z")), min_size=1).filter(
    lambda name: len(name.encode()) <= 64
)
seconds = st.floats(min_value=0.001, max_value=1e6)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, object]:
    """Valid TOML documents that vary the keys whose spelling is most likely to go wrong."""
    chain = sorted(draw(st.sets(seconds, min_size=4, max_size=4)))
    return {
        "runtime_dir": "/" + draw(names).replace("/", "_"),
        "node": {"name": draw(names)},
        "gossip": dict(
            zip(["interval", "suspect_after", "dead_after", "forget_after"], chain, strict=True)
        ),
        "metrics": {"job_memory": draw(st.integers(1, 2**63 - 1))},
        "ranking": {"tier_ratio": draw(st.floats(min_value=1e-9, max_value=1.0))},
        "wrapper": {"state_max_age": chain[0] * 2, "distcc": draw(names).replace("/", "_")},
        "compilers": {
            "offer": draw(
                st.lists(names.map(lambda n: n.replace("/", "_")), unique=True, max_size=5)
            )
        },
    }


@given(documents())
def test_rendered_configurations_read_back_unchanged(document: dict[str, object]) -> None:
    config = config_from_mapping(document, "/etc/p2pcc/p2pcc.toml", host=HOST)
    reread = parse_config(render_config(config), "/etc/p2pcc/p2pcc.toml", host=HOST)
    assert reread == config


def test_a_source_path_with_a_newline_cannot_break_the_document() -> None:
    config = replace(config_from_mapping({}, None, host=HOST), source=Path("/tmp/a\n[x]\nb"))
    text = render_config(config, notes=["note\nruntime_dir = 1"])
    assert '# "source: /tmp/a\\n[x]\\nb"\n' in text
    assert list(tomllib.loads(text)) == ["runtime_dir", *SECTIONS]
