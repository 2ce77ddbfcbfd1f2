"""The error hierarchy: every error p2pcc raises on purpose is a `P2pccError`.

Messages say whose fault it is and what to do, because they end up in a user's
terminal or journal with no other context.
"""

from __future__ import annotations


class P2pccError(Exception):
    """Base of every error p2pcc raises deliberately."""


class WireFormatError(P2pccError):
    """Bytes from the network are not a valid p2pcc message.

    The decoder's invariant is that any input either decodes or raises a subclass of
    this; `reason` is a short stable token the daemon uses to count drops.
    """

    reason = "malformed"


class BadMagicError(WireFormatError):
    """Not a p2pcc datagram at all (another protocol on the port, or noise)."""

    reason = "bad-magic"


class UnsupportedVersionError(WireFormatError):
    """A p2pcc datagram of a major protocol version this build cannot read."""

    reason = "unsupported-version"


class TruncatedError(WireFormatError):
    """The datagram ends before its declared structure does."""

    reason = "truncated"


class OversizedError(WireFormatError):
    """The datagram, or a field in it, is larger than `limits` allows."""

    reason = "oversized"


class AuthenticationError(WireFormatError):
    """The MAC is missing, forged, or made with a key not in our keyring."""

    reason = "bad-mac"


class UnknownKindError(WireFormatError):
    """A message kind from a newer protocol minor version; dropped, not fatal."""

    reason = "unknown-kind"


class RejectedMessageError(P2pccError):
    """A well-formed message the peer table refuses (replay, our own echo, table full)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class ConfigError(P2pccError):
    """A configuration file or value is wrong; names the file, the key and what is expected."""

    def __init__(self, path: str, key: str, reason: str) -> None:
        super().__init__(f"{path}: {key}: {reason}")
        self.path = path
        self.key = key
        self.reason = reason


class FingerprintError(P2pccError):
    """A compiler could not be found or probed."""
