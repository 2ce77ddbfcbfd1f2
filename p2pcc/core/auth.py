"""Cluster keys: the keyring that signs and checks datagrams, and the key file format.

A pool is either keyed or not.  With keys, every datagram carries an HMAC-SHA256 tag
truncated to `limits.MAC_BYTES`; the first key of the keyring signs and every key is
accepted, so a key can be rotated without a flag day (add the new key second everywhere,
then move it first, then drop the old one).  Key material never appears in a repr or
an error message.

A key file holds one key per line as `p2pcc-key-v1:<base64>`; `#` starts a comment.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable

from p2pcc.core import limits
from p2pcc.core.errors import ConfigError

#: Every key line starts with this; the version lets the format change without guessing.
KEY_PREFIX = "p2pcc-key-v1:"

#: Size of the keys `p2pcc keygen` makes: 256 bits, the HMAC-SHA256 output size.
GENERATED_KEY_BYTES = 32

_REMEDY = "run `p2pcc keygen` to make a key and copy the same file to every node"


class Keyring:
    """An immutable, ordered set of cluster keys; empty means an unauthenticated pool."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[bytes] = ()) -> None:
        """Raise ValueError unless there are at most MAX_KEYS keys of MIN_KEY_BYTES or more."""
        keys = tuple(keys)
        if len(keys) > limits.MAX_KEYS:
            raise ValueError(f"{len(keys)} keys, at most {limits.MAX_KEYS} allowed")
        for key in keys:
            if not isinstance(key, bytes) or len(key) < limits.MIN_KEY_BYTES:
                raise ValueError(f"a key must be at least {limits.MIN_KEY_BYTES} bytes")
        self._keys = keys

    @property
    def keys(self) -> tuple[bytes, ...]:
        """All keys, the signing key first."""
        return self._keys

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Keyring) and self._keys == other._keys

    def __hash__(self) -> int:
        return hash(self._keys)

    def __repr__(self) -> str:
        # Never the keys themselves: reprs end up in logs and tracebacks.
        return f"Keyring(<{len(self._keys)} keys>)"

    def sign(self, data: bytes) -> bytes:
        """The tag of `data` under the first key; ValueError if the keyring is empty."""
        if not self._keys:
            raise ValueError("an empty keyring cannot sign")
        return mac(self._keys[0], data)

    def verify(self, data: bytes, tag: bytes) -> bool:
        """Whether `tag` is the tag of `data` under any key of the keyring."""
        # Constant-time per key; which key matched is not secret, so stopping early is fine.
        return any(hmac.compare_digest(mac(key, data), tag) for key in self._keys)


def mac(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of `data` under `key`, truncated to `limits.MAC_BYTES`."""
    # The one-shot C function: a fifth of `hmac.new(...).digest()`'s cost, which every
    # datagram in and out paid.
    return hmac.digest(key, data, "sha256")[: limits.MAC_BYTES]


def format_key_line(key: bytes) -> str:
    """The key-file line for `key` (no newline)."""
    return KEY_PREFIX + base64.b64encode(key).decode("ascii")


def parse_key_file(text: str, path: str) -> Keyring:
    """The keyring a key file describes; ConfigError(path, "key", …) if it is not valid."""
    keys: list[bytes] = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if content:
            keys.append(_parse_key_line(content, path, number))
    if not keys:
        raise ConfigError(path, "key", f"the file holds no key; {_REMEDY}")
    if len(keys) > limits.MAX_KEYS:
        raise ConfigError(
            path, "key", f"{len(keys)} keys, at most {limits.MAX_KEYS}; remove retired keys"
        )
    return Keyring(keys)


def _parse_key_line(content: str, path: str, number: int) -> bytes:
    # Error messages name the line, never its content: that would print a key to a log.
    if not content.startswith(KEY_PREFIX):
        raise ConfigError(path, "key", f"line {number}: expected `{KEY_PREFIX}<base64>`; {_REMEDY}")
    try:
        key = base64.b64decode(content[len(KEY_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            path, "key", f"line {number}: the key is not valid base64; {_REMEDY}"
        ) from None
    if len(key) < limits.MIN_KEY_BYTES:
        raise ConfigError(
            path,
            "key",
            f"line {number}: key of {len(key)} bytes, at least {limits.MIN_KEY_BYTES} "
            f"needed; {_REMEDY}",
        )
    return key
