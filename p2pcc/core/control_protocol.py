"""The control socket's protocol: JSON lines between the CLI and the daemon.

A client sends one JSON object per line (`{"v": 1, "op": "status"}`); the daemon
answers each with one line, in order: `{"v": 1, "ok": true, "result": {...}}` or
`{"v": 1, "ok": false, "code": "...", "error": "..."}`.  Everything a caller can get
wrong raises `ControlError` with a stable `code` token (documented in docs/control.md),
so the server turns any input into a response and never into a crash.  Requests are
checked strictly: an unknown field is an error, because a misspelt `seconds` would
otherwise turn a timed pause into an endless one.  This module only parses and
encodes; the socket, the caller's credentials and the daemon's answers live elsewhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from p2pcc.core import limits
from p2pcc.core.errors import P2pccError

#: Protocol version; a request may omit it, a response always carries it.
VERSION = 1

# Error codes (the `code` field of an error response).
MALFORMED = "malformed"
LINE_TOO_LONG = "line-too-long"
UNSUPPORTED_VERSION = "unsupported-version"
UNKNOWN_OP = "unknown-op"
BAD_ARGUMENT = "bad-argument"
PERMISSION_DENIED = "permission-denied"
BUSY = "busy"
TIMEOUT = "timeout"
FAILED = "failed"
INTERNAL = "internal"
BAD_RESPONSE = "bad-response"  # raised by the client only: the daemon's line is not valid

_FINGERPRINT = re.compile(f"[0-9a-f]{{{2 * limits.FINGERPRINT_BYTES}}}")


class ControlError(P2pccError):
    """A control request failed; `code` is the stable token sent in the error response."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class PermissionDeniedError(ControlError):
    """The caller may not do this (end or replace a pause made by another user); `pause`
    is that pause's document (`Pause.as_document`), when there is one, sent along."""

    def __init__(self, message: str, pause: Mapping[str, Any] | None = None) -> None:
        super().__init__(PERMISSION_DENIED, message)
        self.pause = pause


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """`status`: the daemon's whole status snapshot."""


@dataclass(frozen=True, slots=True)
class PauseRequest:
    """`pause`: stop taking peers' jobs, for `seconds` (None: until resumed);
    `hand_back`: and stop those running here, for their clients to compile (`--now`)."""

    seconds: float | None = None
    reason: str = ""
    hand_back: bool = False

    def __post_init__(self) -> None:
        _check_seconds(self.seconds)
        _check_reason(self.reason)
        if not isinstance(self.hand_back, bool):
            raise ControlError(BAD_ARGUMENT, "'hand_back' must be true or false")


@dataclass(frozen=True, slots=True)
class ResumeRequest:
    """`resume`: take peers' jobs again."""


@dataclass(frozen=True, slots=True)
class HostsRequest:
    """`hosts`: the DISTCC_HOSTS the wrapper would use for this compiler fingerprint."""

    fingerprint: str

    def __post_init__(self) -> None:
        if not (isinstance(self.fingerprint, str) and _FINGERPRINT.fullmatch(self.fingerprint)):
            raise ControlError(
                BAD_ARGUMENT,
                f"fingerprint must be {2 * limits.FINGERPRINT_BYTES} lowercase hex digits "
                "(see `p2pcc fingerprint`)",
            )


@dataclass(frozen=True, slots=True)
class RemeasureRequest:
    """`remeasure`: forget what our jobs measured of the peers named (all when none), so
    their next jobs judge them afresh."""

    peers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.peers, list | tuple) or len(self.peers) > limits.MAX_PEERS:
            raise ControlError(
                BAD_ARGUMENT, f"'peers' must be a list of at most {limits.MAX_PEERS} names"
            )
        for name in self.peers:
            if not (isinstance(name, str) and name.isprintable()):
                raise ControlError(BAD_ARGUMENT, "each of 'peers' must be printable text")
            if len(name.encode()) > limits.MAX_NODE_NAME:
                raise ControlError(
                    BAD_ARGUMENT, f"a peer name is at most {limits.MAX_NODE_NAME} bytes of UTF-8"
                )
        object.__setattr__(self, "peers", tuple(self.peers))


Request = StatusRequest | PauseRequest | ResumeRequest | HostsRequest | RemeasureRequest

#: Op name -> (request type, its fields, the fields that are required).
_OPS: dict[str, tuple[type[Request], frozenset[str], frozenset[str]]] = {
    "status": (StatusRequest, frozenset(), frozenset()),
    "pause": (PauseRequest, frozenset({"seconds", "reason", "hand_back"}), frozenset()),
    "resume": (ResumeRequest, frozenset(), frozenset()),
    "hosts": (HostsRequest, frozenset({"fingerprint"}), frozenset({"fingerprint"})),
    "remeasure": (RemeasureRequest, frozenset({"peers"}), frozenset()),
}
_OP_NAMES: dict[type[Request], str] = {kind: op for op, (kind, _, _) in _OPS.items()}


def may_resume(caller_uid: int, paused_by_uid: int) -> bool:
    """Whether `caller_uid` may end a pause made by `paused_by_uid`: root or the same user."""
    return caller_uid in (0, paused_by_uid)


def may_replace_pause(caller_uid: int, paused_by_uid: int | None) -> bool:
    """Whether `caller_uid` may pause while a pause made by `paused_by_uid` is in effect
    (None: none is).  A new pause takes the old one's place and owner, so anyone else
    could end another user's pause early (a pause of 0.01 s) or take it over and resume
    it: as for resuming, only root or the same user may; an automatic pause is the
    daemon's user's."""
    return paused_by_uid is None or may_resume(caller_uid, paused_by_uid)


def foreign_pause_error(pause: Mapping[str, Any], doing: str) -> PermissionDeniedError:
    """The refusal to `doing` ("resume", "replace or shorten") a pause someone else made,
    saying who made it and until when; `pause` is its document (`Pause.as_document`)."""
    who = f"uid {pause.get('by_uid')}"
    return PermissionDeniedError(describe_foreign_pause(pause, doing, who, _utc), pause)


def describe_foreign_pause(
    pause: Mapping[str, Any], doing: str, who: str, at: Callable[[float], str]
) -> str:
    """ "paused by `who` until `at(until)` (reason): only that user or root may `doing` it"
    for a pause document; the daemon says when in UTC, the CLI in local time."""
    until = pause.get("until")
    if pause.get("automatic") is True:
        when = "while the desktop is in use"
    elif isinstance(until, int | float) and not isinstance(until, bool):
        when = f"until {at(until)}"
    else:
        when = "until resumed"
    reason = pause.get("reason")
    why = f" ({reason})" if isinstance(reason, str) and reason else ""
    return f"paused by {who} {when}{why}: only that user or root may {doing} it"


def _utc(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{timestamp:g} (Unix time)"


def parse_request(line: bytes) -> Request:
    """The request on one line (newline optional); raises `ControlError` for anything else."""
    fields = _json_object(line, "request")
    version = fields.pop("v", VERSION)
    if type(version) is not int:
        raise ControlError(BAD_ARGUMENT, '"v" must be an integer')
    if version != VERSION:
        raise ControlError(
            UNSUPPORTED_VERSION, f"protocol version {version} is not supported (this is {VERSION})"
        )
    op = fields.pop("op", None)
    if not isinstance(op, str):
        raise ControlError(BAD_ARGUMENT, 'a request needs "op", a string')
    if op not in _OPS:
        raise ControlError(UNKNOWN_OP, f"unknown op {op[:40]!r}; known: {', '.join(_OPS)}")
    kind, allowed, required = _OPS[op]
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ControlError(BAD_ARGUMENT, f"{op}: unknown field {unknown[0][:40]!r}")
    missing = sorted(required - set(fields))
    if missing:
        raise ControlError(BAD_ARGUMENT, f"{op}: missing field {missing[0]!r}")
    if "seconds" in fields and fields["seconds"] is not None:
        fields["seconds"] = _number(fields["seconds"], "seconds")
    return kind(**fields)


def encode_request(request: Request) -> bytes:
    """One request line, newline included."""
    fields: dict[str, Any] = {"v": VERSION, "op": _OP_NAMES[type(request)]}
    if isinstance(request, PauseRequest):
        fields |= {"seconds": request.seconds, "reason": request.reason}
        if request.hand_back:  # only then: a daemon without it refuses, not ignores, it
            fields["hand_back"] = True
    elif isinstance(request, HostsRequest):
        fields["fingerprint"] = request.fingerprint
    elif isinstance(request, RemeasureRequest):
        fields["peers"] = list(request.peers)
    return _line(fields)


def encode_result(result: dict[str, Any]) -> bytes:
    """A success response line; raises `ControlError(INTERNAL)` if `result` is not JSON-able."""
    try:
        return _line({"v": VERSION, "ok": True, "result": result})
    except (TypeError, ValueError) as error:
        raise ControlError(INTERNAL, f"the daemon built an invalid answer: {error}") from None


def encode_error(error: ControlError) -> bytes:
    """An error response line (with the pause a permission error is about, if any)."""
    fields = {"v": VERSION, "ok": False, "code": error.code, "error": str(error)}
    if isinstance(error, PermissionDeniedError) and error.pause is not None:
        fields["pause"] = dict(error.pause)
    return _line(fields)


def decode_response(line: bytes) -> dict[str, Any]:
    """The result of a response line; an error response is raised as `ControlError`."""
    try:
        fields = _json_object(line, "response")
    except ControlError as error:
        raise ControlError(BAD_RESPONSE, str(error)) from None
    if fields.get("v") != VERSION:
        raise ControlError(BAD_RESPONSE, f"the daemon speaks protocol version {fields.get('v')!r}")
    if fields.get("ok") is True and isinstance(fields.get("result"), dict):
        result: dict[str, Any] = fields["result"]
        return result
    code, message = fields.get("code"), fields.get("error")
    if fields.get("ok") is False and isinstance(code, str) and isinstance(message, str):
        if code == PERMISSION_DENIED:
            pause = fields.get("pause")
            raise PermissionDeniedError(message, pause if isinstance(pause, dict) else None)
        raise ControlError(code, message)
    raise ControlError(BAD_RESPONSE, "the daemon's answer has neither a result nor an error")


class LineBuffer:
    """Splits a byte stream into lines, refusing to hold more than `max_line` bytes of one."""

    def __init__(self, max_line: int = limits.MAX_CONTROL_LINE) -> None:
        self._max_line = max_line
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The lines `data` completes (without their newline); raises LINE_TOO_LONG."""
        lines = []
        start = 0
        # Only the new bytes are searched, so a line fed a byte at a time costs linear time.
        while (end := data.find(b"\n", start)) != -1:
            self._pending += data[start:end]
            self._check_pending()
            lines.append(bytes(self._pending))
            self._pending.clear()
            start = end + 1
        self._pending += data[start:]
        self._check_pending()
        return lines

    def _check_pending(self) -> None:
        if len(self._pending) > self._max_line:
            raise ControlError(LINE_TOO_LONG, f"a line is longer than {self._max_line} bytes")

    def take_rest(self) -> bytes:
        """The bytes after the last newline (a last line with none), emptying the buffer."""
        rest = bytes(self._pending)
        self._pending.clear()
        return rest


def _json_object(line: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(line, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        # ValueError covers bad JSON, NaN/Infinity and integers too long to convert;
        # RecursionError a line of 60,000 opening brackets.
        reason = error.msg if isinstance(error, json.JSONDecodeError) else type(error).__name__
        raise ControlError(MALFORMED, f"the {what} is not valid JSON: {reason}") from None
    if not isinstance(value, dict):
        raise ControlError(MALFORMED, f"the {what} must be a JSON object")
    return value


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(BAD_ARGUMENT, f"{name!r} must be a number")
    if not 0 < value <= limits.MAX_PAUSE_SECONDS:
        raise ControlError(
            BAD_ARGUMENT, f"{name!r} must be above 0 and at most {limits.MAX_PAUSE_SECONDS:.0f}"
        )
    return float(value)


def _check_seconds(seconds: object) -> None:
    if seconds is not None:
        _number(seconds, "seconds")


def _check_reason(reason: object) -> None:
    if not isinstance(reason, str):
        raise ControlError(BAD_ARGUMENT, "'reason' must be a string")
    # Stricter than the wire (which refuses control characters): the reason is shown in
    # other people's terminals, and a lone surrogate could not even be encoded.
    if not reason.isprintable():
        raise ControlError(BAD_ARGUMENT, "'reason' must be printable text on one line")
    if len(reason.encode()) > limits.MAX_PAUSE_REASON:
        raise ControlError(
            BAD_ARGUMENT, f"'reason' must be at most {limits.MAX_PAUSE_REASON} bytes of UTF-8"
        )


def _line(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, allow_nan=False, separators=(",", ":")).encode() + b"\n"
