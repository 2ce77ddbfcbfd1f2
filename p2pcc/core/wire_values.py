"""Typed checks for decoded msgpack values: each returns the value or raises a
WireFormatError (OversizedError above a cap) naming the field, never echoing the data.

Shared by the envelope (p2pcc.core.wire) and the status body (p2pcc.core.wire_status).
"""

from __future__ import annotations

import math
import unicodedata

from p2pcc.core.errors import OversizedError, WireFormatError


def type_name(value: object) -> str:
    return type(value).__name__


def as_map(value: object, where: str) -> dict[object, object]:
    if not isinstance(value, dict):
        raise WireFormatError(f"{where}: expected a map, got {type_name(value)}")
    return value


def required(fields: dict[object, object], key: str, prefix: str = "") -> object:
    if key not in fields:
        raise WireFormatError(f"{prefix}{key}: missing")
    return fields[key]


def array(value: object, where: str, cap: int) -> list[object]:
    if not isinstance(value, list):
        raise WireFormatError(f"{where}: expected an array, got {type_name(value)}")
    if len(value) > cap:
        raise OversizedError(f"{where}: {len(value)} elements, at most {cap}")
    return value


def integer(value: object, where: str, low: int, high: int) -> int:
    # bool is a subclass of int in Python, but `true` is not a number on the wire.
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireFormatError(f"{where}: expected an integer, got {type_name(value)}")
    check_range(value, where, low, high)
    return value


def real(value: object, where: str, low: float, high: float) -> float:
    """A finite number in [low, high]; integers are accepted for other encoders' sake."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise WireFormatError(f"{where}: expected a number, got {type_name(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise WireFormatError(f"{where}: not a finite number")
    check_range(number, where, low, high)
    return number


def check_range(number: float, where: str, low: float, high: float) -> None:
    """Above the cap is oversized (a bound of ours); below the floor is malformed."""
    if number > high:
        raise OversizedError(f"{where}: {number} is more than {high}")
    if number < low:
        raise WireFormatError(f"{where}: {number} is less than {low}")


def string(value: object, where: str, cap: int) -> str:
    """A string of at most `cap` UTF-8 bytes with no control characters."""
    if not isinstance(value, str):
        raise WireFormatError(f"{where}: expected a string, got {type_name(value)}")
    size = len(value.encode("utf-8"))
    if size > cap:
        raise OversizedError(f"{where}: {size} bytes, at most {cap}")
    # Control characters could drive the terminal of whoever runs `p2pcc status`.  Most
    # strings are printable ASCII, which has none: only the others are looked at closely.
    printable = value.isascii() and value.isprintable()
    if not printable and any(unicodedata.category(char) == "Cc" for char in value):
        raise WireFormatError(f"{where}: contains a control character")
    return value


def binary(value: object, where: str, size: int) -> bytes:
    if not isinstance(value, bytes):
        raise WireFormatError(f"{where}: expected binary, got {type_name(value)}")
    if len(value) > size:
        raise OversizedError(f"{where}: {len(value)} bytes, expected {size}")
    if len(value) < size:
        raise WireFormatError(f"{where}: {len(value)} bytes, expected {size}")
    return value
