"""The join token: one cluster key as one line a person can copy from machine to machine.

`p2pcc keygen` prints it, `p2pcc join` reads it from standard input.  The form is
`p2pcc-key-1:` followed by the unpadded base64url of the key and a 4-byte checksum
(the first bytes of SHA-256 over the prefix and the key).  The checksum is there for
people, not attackers: a token cut short by a terminal, a missed character or a pasted
neighbour fails it with a message that says so, instead of installing a wrong key that
would only show up as a node nobody hears.  base64url keeps the token free of `+` and
`/`, which some terminals and chat tools take as word breaks.

Whitespace anywhere is ignored (a line wrapped by a terminal or a mail client pastes
back with breaks in it).  Errors never quote the token: it is a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from p2pcc.core import limits
from p2pcc.core.errors import P2pccError

#: The version of the token form; a later form changes the digit.
TOKEN_VERSION = 1
TOKEN_PREFIX = f"p2pcc-key-{TOKEN_VERSION}:"
CHECKSUM_BYTES = 4
#: Longest key a token carries: far above what keygen makes (32 bytes), well below
#: anything that could make decoding costly.
MAX_TOKEN_KEY_BYTES = 1024

_ANY_VERSION = re.compile(r"p2pcc-key-(\d+):")
_WHITESPACE = re.compile(r"\s+")
_REMEDY = "copy the whole line `p2pcc keygen` printed (or `p2pcc keygen --token` shows it again)"


class KeyTokenError(P2pccError):
    """What was read is not a usable join token; the message says why and what to do."""


def encode_token(key: bytes) -> str:
    """The token for `key` (no newline)."""
    payload = key + _checksum(key)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def decode_token(text: str) -> bytes:
    """The key a token holds; KeyTokenError if `text` is not one whole, intact token."""
    compact = _WHITESPACE.sub("", text)
    if not compact:
        raise KeyTokenError(f"no token given; {_REMEDY}")
    version = _ANY_VERSION.match(compact)
    if version is None:
        raise KeyTokenError(f"this is not a p2pcc join token (it must start with {TOKEN_PREFIX})")
    if version.group(1) != str(TOKEN_VERSION):
        raise KeyTokenError(
            f"token version {version.group(1)}, but this p2pcc reads version {TOKEN_VERSION}: "
            "use the same p2pcc version on both machines"
        )
    body = compact[len(TOKEN_PREFIX) :].rstrip("=")  # base64 padding, if a tool added it
    if len(body) > _encoded_length(MAX_TOKEN_KEY_BYTES + CHECKSUM_BYTES):
        raise KeyTokenError(f"the token is too long; {_REMEDY}")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise KeyTokenError(f"the token is damaged (not base64url); {_REMEDY}") from None
    if base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=") != body:
        # Stray characters or a cut inside a base64 group that decoding let through.
        raise KeyTokenError(f"the token is damaged or incomplete; {_REMEDY}")
    key, checksum = payload[:-CHECKSUM_BYTES], payload[-CHECKSUM_BYTES:]
    if len(payload) < CHECKSUM_BYTES or _checksum(key) != checksum:
        raise KeyTokenError(f"the token is damaged or incomplete (checksum mismatch); {_REMEDY}")
    if len(key) < limits.MIN_KEY_BYTES:
        raise KeyTokenError(
            f"the token holds a key of {len(key)} bytes, at least {limits.MIN_KEY_BYTES} needed"
        )
    return key


def _checksum(key: bytes) -> bytes:
    return hashlib.sha256(TOKEN_PREFIX.encode("ascii") + key).digest()[:CHECKSUM_BYTES]


def _encoded_length(size: int) -> int:
    return (size * 4 + 2) // 3
