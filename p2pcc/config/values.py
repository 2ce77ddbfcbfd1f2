"""Parsers for single configuration values, and the TOML spelling of values.

Each parser takes what `tomllib` produced and returns the typed value, or raises
`BadValueError` carrying the "expected ..." half of the message; the schema adds the file,
the key and the offending value, so every message has one shape:
`<file>: <section>.<key>: expected <what>, got <value as written in TOML>`.
TOML types are taken literally: a bool is not an integer and a float is not an
integer, but an integer is a fine float.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from p2pcc.core import limits

#: Linux IFNAMSIZ is 16 including the terminating NUL.
MAX_INTERFACE_NAME = 15

#: useradd refuses longer user names by default.
MAX_USER_NAME = 32

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BadValueError(Exception):
    """A value does not fit: `expected` completes "expected ...", `value` is the culprit.

    `index` names the offending element of a list, so the message can say `allow[2]`.
    """

    def __init__(self, expected: str, value: object, index: int | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.value = value
        self.index = index


# --- spelling values back as TOML --------------------------------------------------------

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_string(text: str) -> str:
    """`text` as a TOML basic string, escaping what TOML requires."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: object) -> str:
    """A string, number, bool or list of those in TOML syntax; anything else as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, float):
        return _toml_float(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    # TOML dates and times: their isoformat is what the user wrote.
    return "a table" if isinstance(value, dict) else str(value)


def _toml_float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


# --- scalars -----------------------------------------------------------------------------


def integer(low: int, high: int | None = None) -> Callable[[object], int]:
    """A parser for integers in [low, high] (no upper bound when `high` is None)."""
    expected = (
        f"an integer of at least {low}" if high is None else f"an integer from {low} to {high}"
    )

    def parse(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadValueError(expected, value)
        if value < low or (high is not None and value > high):
            raise BadValueError(expected, value)
        return value

    return parse


def number(expected: str, accept: Callable[[float], bool]) -> Callable[[object], float]:
    """A parser for finite numbers (int or float) that `accept` approves."""

    def parse(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadValueError(expected, value)
        result = float(value)
        if not math.isfinite(result) or not accept(result):
            raise BadValueError(expected, value)
        return result

    return parse


positive_seconds = number("a number of seconds greater than 0", lambda x: x > 0)


def boolean(value: object) -> bool:
    """`true` or `false`, nothing else."""
    if not isinstance(value, bool):
        raise BadValueError("true or false", value)
    return value


def node_name(value: object) -> str:
    """A printable name of 1 to MAX_NODE_NAME UTF-8 bytes (it is gossiped)."""
    expected = f"a printable name of 1 to {limits.MAX_NODE_NAME} UTF-8 bytes"
    if not isinstance(value, str) or not value or not value.isprintable():
        raise BadValueError(expected, value)
    if len(value.encode()) > limits.MAX_NODE_NAME:
        raise BadValueError(expected, value)
    return value


def interface_name(value: object) -> str:
    """A network interface name, or "" for the interface of the default route."""
    expected = (
        f'an interface name of at most {MAX_INTERFACE_NAME} bytes without "/" or spaces, '
        'or "" for the interface of the default route'
    )
    if not isinstance(value, str) or len(value.encode()) > MAX_INTERFACE_NAME:
        raise BadValueError(expected, value)
    if "/" in value or not value.isprintable() or " " in value:
        raise BadValueError(expected, value)
    return value


def user_name(value: object) -> str:
    """A Unix user name."""
    expected = f"a user name of 1 to {MAX_USER_NAME} characters"
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?", value):
        raise BadValueError(expected, value)
    if len(value) > MAX_USER_NAME:
        raise BadValueError(expected, value)
    return value


# --- paths and programs ------------------------------------------------------------------


def absolute_path(home: Path) -> Callable[[object], Path]:
    """A parser for absolute paths; a leading `~/` means `home`."""
    expected = 'an absolute path (or one starting with "~/")'

    def parse(value: object) -> Path:
        if not isinstance(value, str) or "\0" in value:
            raise BadValueError(expected, value)
        path = home / value[2:] if value.startswith("~/") else Path(value)
        if not path.is_absolute():
            raise BadValueError(expected, value)
        return path

    return parse


def optional_path(home: Path) -> Callable[[object], Path | None]:
    """Like `absolute_path`, but "" means none."""
    parse_path = absolute_path(home)

    def parse(value: object) -> Path | None:
        if value == "":
            return None
        try:
            return parse_path(value)
        except BadValueError:
            raise BadValueError('an absolute path, or "" for none', value) from None

    return parse


def program(home: Path) -> Callable[[object], str]:
    """A parser for a program: a bare name looked up on PATH, or an absolute path."""
    expected = "a program name to look up on PATH, or an absolute path"
    parse_path = absolute_path(home)

    def parse(value: object) -> str:
        if not isinstance(value, str) or not value or not value.isprintable():
            raise BadValueError(expected, value)
        if "/" not in value:
            return value
        try:
            return str(parse_path(value))
        except BadValueError:
            raise BadValueError(expected, value) from None

    return parse


def program_list(home: Path) -> Callable[[object], tuple[str, ...]]:
    """A parser for a list of distinct programs (names or absolute paths)."""
    parse_program = program(home)

    def parse(value: object) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise BadValueError("a list of compiler names or absolute paths", value)
        result: list[str] = []
        for index, item in enumerate(value):
            try:
                name = parse_program(item)
            except BadValueError as error:
                raise BadValueError(error.expected, item, index) from None
            if name in result:
                raise BadValueError("each compiler listed once", item, index)
            result.append(name)
        return tuple(result)

    return parse


# --- network -----------------------------------------------------------------------------


def multicast_group(value: object) -> IPAddress:
    """An IPv4 or IPv6 multicast address that can leave this host."""
    expected = "an IPv4 or IPv6 multicast address such as 239.192.74.70 or ff02::7063"
    if not isinstance(value, str):
        raise BadValueError(expected, value)
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise BadValueError(expected, value) from None
    if not address.is_multicast:
        raise BadValueError(expected, value)
    if isinstance(address, ipaddress.IPv6Address) and address.packed[1] & 0x0F == 1:
        # Interface-local scope (ff01::/16) never reaches another machine.
        raise BadValueError("a multicast address with a scope wider than interface-local", value)
    return address


def network_item(item: object, index: int, example: str) -> IPNetwork:
    """Item `index` of a list of networks (CIDR; host bits may be set)."""
    if not isinstance(item, str):
        raise BadValueError(f'a network such as "{example}"', item, index)
    try:
        return ipaddress.ip_network(item, strict=False)
    except ValueError:
        raise BadValueError(f'a network such as "{example}"', item, index) from None


def allowed_networks(value: object) -> tuple[IPNetwork, ...]:
    """A list of networks (CIDR) distccd accepts jobs from; none may be everyone."""
    if not isinstance(value, list):
        raise BadValueError('a list of networks such as ["192.168.1.0/24"]', value)
    result = []
    for index, item in enumerate(value):
        network = network_item(item, index, "192.168.1.0/24")
        if network.prefixlen == 0:
            raise BadValueError(
                "a network narrower than /0 (distccd would accept jobs, which run "
                "compiler commands, from any address)",
                item,
                index,
            )
        result.append(network)
    return tuple(result)


# --- sizes -------------------------------------------------------------------------------

_BINARY = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_DECIMAL = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?) ?([a-z]*)")
_LARGEST_SIZE = 2**63 - 1  # what a signed 64-bit byte count holds


def _unit(suffix: str) -> int | None:
    if suffix in _DECIMAL:
        return _DECIMAL[suffix]
    stem = suffix.removesuffix("ib") if suffix.endswith("ib") else suffix.removesuffix("b")
    if suffix.endswith("ib") and stem == "":
        return None  # a bare "iB" means nothing
    return _BINARY.get(stem)


def parse_size(value: object) -> int:
    """Bytes from an integer or a string like "1GiB", "512M", "2G" or "1.5 GB"."""
    expected = 'a size in bytes greater than 0, such as 1073741824, "1GiB", "512MiB" or "2G"'
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadValueError(expected, value)
    if isinstance(value, int):
        result = value
    else:
        match = _SIZE.fullmatch(value.strip().lower())
        unit = _unit(match.group(2)) if match else None
        if match is None or unit is None:
            raise BadValueError(expected, value)
        result = math.floor(Fraction(match.group(1)) * unit)
    if not 0 < result <= _LARGEST_SIZE:
        raise BadValueError(expected, value)
    return result


def format_size(count: int) -> str | int:
    """A byte count in the largest binary unit that divides it exactly, else the integer."""
    for suffix, unit in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count % unit == 0:
            return f"{count // unit}{suffix}"
    return count
