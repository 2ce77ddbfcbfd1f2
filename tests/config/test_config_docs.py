"""docs/configuration.md documents every key, and its examples are valid and true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from p2pcc.config import HostDefaults, config_from_mapping, parse_config
from p2pcc.config.schema import schema

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"
ROOT_HOST = HostDefaults(
    hostname="ws1",
    home=Path("/root"),
    distccd_found=True,
    runtime_dir=Path("/run/p2pcc"),
    runtime_dir_override=None,
    state_dir=Path("/var/lib/p2pcc"),
    config_dir=Path("/etc/p2pcc"),
)


def section_text(heading: str) -> str:
    """The part of the page from the `## heading...` line up to the next `## `."""
    text = DOC.read_text()
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start : None if end < 0 else end]


def toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("section", list(schema(ROOT_HOST)))
def test_every_key_has_a_row_in_its_section(section: str) -> None:
    text = section_text(f"`[{section}]`")
    for key in schema(ROOT_HOST)[section]:
        assert f"\n| `{key}` |" in text, f"{section}.{key} is not documented"


def test_the_top_level_key_is_documented() -> None:
    assert "\n| `runtime_dir` |" in section_text("Top level")


def test_the_complete_example_is_exactly_the_defaults() -> None:
    example = toml_blocks()[0]
    assert parse_config(example, "example", host=ROOT_HOST) == config_from_mapping(
        {}, "example", host=ROOT_HOST
    )


def test_every_example_is_valid() -> None:
    blocks = toml_blocks()
    assert len(blocks) == 2
    for block in blocks:
        parse_config(block, "example", host=ROOT_HOST)
