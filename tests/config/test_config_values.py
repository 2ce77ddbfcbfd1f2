"""Single-value parsing: sizes, and spelling values back as TOML."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.config import format_size, parse_size
from p2pcc.config.values import BadValueError, toml_string, toml_value

SIZES = [
    (1073741824, 2**30),
    ("1073741824", 2**30),
    ("1GiB", 2**30),
    ("1G", 2**30),
    ("1gib", 2**30),
    ("1 GiB", 2**30),
    (" 2G ", 2 * 2**30),
    ("512MiB", 512 * 2**20),
    ("512M", 512 * 2**20),
    ("64KiB", 64 * 1024),
    ("64k", 64 * 1024),
    ("1TiB", 2**40),
    ("1.5GiB", 3 * 2**29),
    ("100B", 100),
    ("10KB", 10_000),
    ("3GB", 3 * 10**9),
    ("2MB", 2 * 10**6),
    ("1TB", 10**12),
    ("0.5KiB", 512),
]


@pytest.mark.parametrize(("text", "count"), SIZES)
def test_sizes_parse_to_bytes(text: int | str, count: int) -> None:
    assert parse_size(text) == count


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "GiB",
        "1iB",
        "1Ki",
        "1.5.5G",
        "-1G",
        "1 lightyear",
        "1e9",
        "0",
        "0.1B",
        0,
        -1,
        2**63,
        True,
        1.5,
        [1],
    ],
)
def test_garbage_zero_and_negative_sizes_are_rejected(bad: object) -> None:
    with pytest.raises(BadValueError) as caught:
        parse_size(bad)
    assert caught.value.value == bad
    assert caught.value.expected.startswith("a size in bytes greater than 0")


@pytest.mark.parametrize(
    ("count", "spelled"),
    [(2**30, "1GiB"), (3 * 2**29, "1536MiB"), (1024, "1KiB"), (2**41, "2TiB"), (1000, 1000)],
)
def test_sizes_are_spelled_in_the_largest_exact_binary_unit(count: int, spelled: object) -> None:
    assert format_size(count) == spelled


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_a_spelled_size_parses_back_to_itself(count: int) -> None:
    assert parse_size(format_size(count)) == count


@given(st.text())
def test_toml_strings_read_back_unchanged(text: str) -> None:
    assert tomllib.loads(f"a = {toml_string(text)}")["a"] == text


@given(st.floats(allow_nan=False) | st.integers(-(2**63), 2**63 - 1) | st.booleans())
def test_toml_numbers_read_back_unchanged(number: float | bool) -> None:
    read = tomllib.loads(f"a = {toml_value(number)}")["a"]
    assert (read, type(read)) == (number, type(number))


def test_lists_and_tables_are_spelled_for_messages() -> None:
    assert toml_value(["a", 1, [True]]) == '["a", 1, [true]]'
    assert toml_value({"x": 1}) == "a table"
    assert toml_value(float("nan")) == "nan"
