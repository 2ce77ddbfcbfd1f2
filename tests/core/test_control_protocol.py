"""The control protocol: request parsing with exact error codes, responses, line framing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import control_protocol as proto
from p2pcc.core import limits
from p2pcc.core.control_protocol import (
    ControlError,
    HostsRequest,
    LineBuffer,
    PauseRequest,
    PermissionDeniedError,
    ResumeRequest,
    StatusRequest,
    decode_response,
    encode_error,
    encode_request,
    encode_result,
    foreign_pause_error,
    may_replace_pause,
    may_resume,
    parse_request,
)

FINGERPRINT = "0123456789abcdef"


def code_of(line: bytes) -> str:
    with pytest.raises(ControlError) as raised:
        parse_request(line)
    return raised.value.code


# --- requests that parse ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"op": "status"}', StatusRequest()),
        (b'{"v": 1, "op": "status"}\n', StatusRequest()),
        (b'{"op": "pause"}', PauseRequest(None, "")),
        (b'{"op": "pause", "seconds": null, "reason": "meeting"}', PauseRequest(None, "meeting")),
        (b'{"op": "pause", "seconds": 90}', PauseRequest(90.0, "")),
        (b'{"op": "pause", "seconds": 0.5, "reason": "caf\\u00e9"}', PauseRequest(0.5, "café")),
        (b'{"op": "pause", "hand_back": true}', PauseRequest(None, "", hand_back=True)),
        (b'{"op": "pause", "hand_back": false}', PauseRequest(None, "")),
        (b'{"op": "resume"}', ResumeRequest()),
        (b'{"op": "hosts", "fingerprint": "0123456789abcdef"}', HostsRequest(FINGERPRINT)),
        (b'  {"op": "status"}  \r\n', StatusRequest()),
        (b'{"op": "remeasure"}', proto.RemeasureRequest()),
        (
            b'{"op": "remeasure", "peers": ["ws7", "caf\\u00e9"]}',
            proto.RemeasureRequest(("ws7", "café")),
        ),
    ],
)
def test_valid_requests_parse(line: bytes, expected: proto.Request) -> None:
    assert parse_request(line) == expected


@pytest.mark.parametrize("value", [b"1", b"0", b'"true"', b"null", b"[]", b"{}"])
def test_a_hand_back_that_is_not_a_boolean_is_a_bad_argument(value: bytes) -> None:
    with pytest.raises(ControlError, match="'hand_back' must be true or false") as error:
        parse_request(b'{"op": "pause", "hand_back": ' + value + b"}")
    assert error.value.code == proto.BAD_ARGUMENT


def test_hand_back_is_sent_only_when_true() -> None:
    # A daemon that predates it refuses the field: --now must not turn into a plain pause
    # there, and a plain pause must still work.
    assert b"hand_back" not in encode_request(PauseRequest(60.0, "x"))
    assert json.loads(encode_request(PauseRequest(hand_back=True)))["hand_back"] is True


def test_integer_seconds_become_a_float() -> None:
    request = parse_request(b'{"op": "pause", "seconds": 60}')
    assert isinstance(request, PauseRequest)
    assert type(request.seconds) is float


@pytest.mark.parametrize(
    "request_",
    [
        StatusRequest(),
        ResumeRequest(),
        PauseRequest(),
        PauseRequest(3600.0, "benchmarking"),
        PauseRequest(60.0, "", hand_back=True),
        HostsRequest(FINGERPRINT),
        proto.RemeasureRequest(),
        proto.RemeasureRequest(("ws7", "ws8")),
    ],
)
def test_encoded_requests_are_one_line_that_parses_back(request_: proto.Request) -> None:
    line = encode_request(request_)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line)["v"] == proto.VERSION
    assert parse_request(line) == request_


@given(
    seconds=st.none() | st.floats(min_value=0.001, max_value=limits.MAX_PAUSE_SECONDS),
    reason=st.text(max_size=limits.MAX_PAUSE_REASON // 4).filter(str.isprintable),
)
def test_any_valid_pause_round_trips(seconds: float | None, reason: str) -> None:
    request = PauseRequest(seconds, reason)
    assert parse_request(encode_request(request)) == request


# --- requests that do not ---------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"status",
        b'{"op": "status"',
        b'{"op": "status"} {"op": "status"}',
        b"\xff\xfe{}",
        b'["op", "status"]',
        b"42",
        b"null",
        b'"status"',
        b'{"op": "pause", "seconds": NaN}',
        b'{"op": "pause", "seconds": Infinity}',
        b'{"op": "pause", "seconds": -Infinity}',
        b'{"op": "pause", "seconds": ' + b"9" * 5000 + b"}",
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_malformed_lines_are_malformed(line: bytes) -> None:
    assert code_of(line) == proto.MALFORMED


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b'{"v": 2, "op": "status"}', proto.UNSUPPORTED_VERSION),
        (b'{"v": 0, "op": "status"}', proto.UNSUPPORTED_VERSION),
        (b'{"v": "1", "op": "status"}', proto.BAD_ARGUMENT),
        (b'{"v": true, "op": "status"}', proto.BAD_ARGUMENT),
        (b'{"v": 1.0, "op": "status"}', proto.BAD_ARGUMENT),
        (b"{}", proto.BAD_ARGUMENT),
        (b'{"op": 1}', proto.BAD_ARGUMENT),
        (b'{"op": null}', proto.BAD_ARGUMENT),
        (b'{"op": "reboot"}', proto.UNKNOWN_OP),
        (b'{"op": "STATUS"}', proto.UNKNOWN_OP),
        (b'{"op": "status", "verbose": true}', proto.BAD_ARGUMENT),
        (b'{"op": "pause", "second": 60}', proto.BAD_ARGUMENT),
        (b'{"op": "resume", "uid": 0}', proto.BAD_ARGUMENT),
        (b'{"op": "hosts"}', proto.BAD_ARGUMENT),
    ],
)
def test_bad_requests_have_exact_codes(line: bytes, code: str) -> None:
    assert code_of(line) == code


@pytest.mark.parametrize(
    "seconds",
    [
        '"60"',
        "true",
        "false",
        "[60]",
        "{}",
        "0",
        "0.0",
        "-1",
        "1e999",
        str(int(limits.MAX_PAUSE_SECONDS) + 1),
        "1" + "0" * 400,
    ],
)
def test_bad_pause_seconds_are_bad_arguments(seconds: str) -> None:
    assert code_of(f'{{"op": "pause", "seconds": {seconds}}}'.encode()) == proto.BAD_ARGUMENT


def test_pause_seconds_at_the_cap_are_accepted() -> None:
    line = f'{{"op": "pause", "seconds": {int(limits.MAX_PAUSE_SECONDS)}}}'.encode()
    assert parse_request(line) == PauseRequest(limits.MAX_PAUSE_SECONDS, "")


@pytest.mark.parametrize(
    "reason",
    [
        5,
        None,
        ["meeting"],
        "two\nlines",
        "bell\x07",
        "\x1b[31mred",
        "zero\u200bwidth",
        "x" * (limits.MAX_PAUSE_REASON + 1),
        "é" * (limits.MAX_PAUSE_REASON // 2 + 1),
    ],
)
def test_bad_pause_reasons_are_bad_arguments(reason: object) -> None:
    assert code_of(json.dumps({"op": "pause", "reason": reason}).encode()) == proto.BAD_ARGUMENT


def test_a_lone_surrogate_in_a_reason_is_a_bad_argument() -> None:
    assert code_of(b'{"op": "pause", "reason": "\\ud800"}') == proto.BAD_ARGUMENT


def test_a_reason_at_the_cap_is_accepted() -> None:
    reason = "é" * (limits.MAX_PAUSE_REASON // 2)
    assert parse_request(json.dumps({"op": "pause", "reason": reason}).encode()) == PauseRequest(
        None, reason
    )


@pytest.mark.parametrize(
    "fingerprint", [5, "", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "g" * 16]
)
def test_bad_fingerprints_are_bad_arguments(fingerprint: object) -> None:
    line = json.dumps({"op": "hosts", "fingerprint": fingerprint}).encode()
    assert code_of(line) == proto.BAD_ARGUMENT


@pytest.mark.parametrize(
    "peers",
    [
        "ws7",
        {"ws7": 1},
        [1],
        [None],
        ["two\nlines"],
        ["x" * (limits.MAX_NODE_NAME + 1)],
        ["ws"] * (limits.MAX_PEERS + 1),
    ],
)
def test_bad_remeasure_peers_are_bad_arguments(peers: object) -> None:
    line = json.dumps({"op": "remeasure", "peers": peers}).encode()
    assert code_of(line) == proto.BAD_ARGUMENT


def test_request_objects_validate_like_the_parser() -> None:
    with pytest.raises(ControlError) as raised:
        PauseRequest(-5.0)
    assert raised.value.code == proto.BAD_ARGUMENT
    with pytest.raises(ControlError):
        HostsRequest("nope")


def outcome(line: bytes) -> proto.Request | ControlError:
    try:
        return parse_request(line)
    except ControlError as error:
        return error


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_control_error(line: bytes) -> None:
    result = outcome(line)
    if isinstance(result, ControlError):
        assert result.code in {proto.MALFORMED, proto.BAD_ARGUMENT, proto.UNKNOWN_OP}
    else:
        assert isinstance(result, StatusRequest | PauseRequest | ResumeRequest | HostsRequest)


@given(st.dictionaries(st.text(max_size=8), st.none() | st.integers() | st.text(max_size=8)))
def test_any_json_object_parses_or_raises_a_non_framing_error(fields: dict[str, object]) -> None:
    result = outcome(json.dumps(fields).encode())
    assert not isinstance(result, ControlError) or result.code != proto.MALFORMED


# --- responses --------------------------------------------------------------------------


def test_a_result_round_trips() -> None:
    line = encode_result({"state": "active", "peers": [1, 2.5, None]})
    assert line.endswith(b"\n")
    assert json.loads(line) == {
        "v": 1,
        "ok": True,
        "result": {"state": "active", "peers": [1, 2.5, None]},
    }
    assert decode_response(line) == {"state": "active", "peers": [1, 2.5, None]}


def test_an_error_round_trips_with_its_code() -> None:
    line = encode_error(ControlError(proto.UNKNOWN_OP, "unknown op 'x'"))
    assert json.loads(line) == {
        "v": 1,
        "ok": False,
        "code": "unknown-op",
        "error": "unknown op 'x'",
    }
    with pytest.raises(ControlError) as raised:
        decode_response(line)
    assert (raised.value.code, str(raised.value)) == ("unknown-op", "unknown op 'x'")
    assert not isinstance(raised.value, PermissionDeniedError)


def test_permission_denied_is_raised_as_its_own_class() -> None:
    with pytest.raises(PermissionDeniedError) as raised:
        decode_response(encode_error(PermissionDeniedError("paused by uid 1000")))
    assert raised.value.code == proto.PERMISSION_DENIED
    assert raised.value.pause is None


def test_permission_denied_carries_the_pause_it_is_about() -> None:
    pause = {"reason": "maintenance", "by_uid": 0, "until": 1767225600.0, "automatic": False}
    line = encode_error(PermissionDeniedError("paused by uid 0", pause))
    assert json.loads(line)["pause"] == pause
    with pytest.raises(PermissionDeniedError) as raised:
        decode_response(line)
    assert raised.value.pause == pause
    odd = line.replace(b'"pause":{', b'"pause":[{').replace(b"false}", b"false}]")
    with pytest.raises(PermissionDeniedError) as raised:
        decode_response(odd)  # a pause that is no object is left out, the error kept
    assert raised.value.pause is None


@pytest.mark.parametrize("result", [{"when": {1, 2}}, {"load": float("nan")}, {"x": object()}])
def test_a_result_that_is_not_json_is_an_internal_error(result: dict[str, object]) -> None:
    with pytest.raises(ControlError) as raised:
        encode_result(result)
    assert raised.value.code == proto.INTERNAL


@pytest.mark.parametrize(
    "line",
    [
        b"garbage",
        b"[]",
        b'{"ok": true, "result": {}}',
        b'{"v": 2, "ok": true, "result": {}}',
        b'{"v": 1, "ok": true, "result": []}',
        b'{"v": 1, "ok": false}',
        b'{"v": 1, "ok": false, "code": 3, "error": "x"}',
        b'{"v": 1}',
    ],
)
def test_invalid_responses_are_bad_responses(line: bytes) -> None:
    with pytest.raises(ControlError) as raised:
        decode_response(line)
    assert raised.value.code == proto.BAD_RESPONSE


# --- permission rule --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "paused_by", "allowed"),
    [(0, 0, True), (0, 1000, True), (1000, 1000, True), (1000, 1001, False), (1000, 0, False)],
)
def test_only_root_or_the_pausing_user_may_resume(
    caller: int, paused_by: int, allowed: bool
) -> None:
    assert may_resume(caller, paused_by) is allowed


@pytest.mark.parametrize(
    ("caller", "paused_by", "allowed"),
    [
        (1000, None, True),  # no pause: anyone may pause
        (0, None, True),
        (1000, 1000, True),  # their own pause: lengthen, shorten, reword
        (0, 1000, True),  # root may replace anyone's
        (1000, 0, False),  # root's pause (or the daemon's automatic one, as root)
        (1001, 1000, False),
    ],
)
def test_only_root_or_the_pausing_user_may_replace_a_pause(
    caller: int, paused_by: int | None, allowed: bool
) -> None:
    assert may_replace_pause(caller, paused_by) is allowed


@pytest.mark.parametrize(
    ("pause", "doing", "message"),
    [
        (
            {"reason": "maintenance", "by_uid": 0, "until": 1767225600.0, "automatic": False},
            "replace or shorten",
            "paused by uid 0 until 2026-01-01 00:00:00 UTC (maintenance): only that user or "
            "root may replace or shorten it",
        ),
        (
            {"reason": "", "by_uid": 1000, "until": None, "automatic": False},
            "resume",
            "paused by uid 1000 until resumed: only that user or root may resume it",
        ),
        (
            {"reason": "", "by_uid": 7, "until": 1e300, "automatic": False},
            "resume",
            "paused by uid 7 until 1e+300 (Unix time): only that user or root may resume it",
        ),
        (
            {"reason": "desktop in use", "by_uid": 0, "until": None, "automatic": True},
            "replace or shorten",
            "paused by uid 0 while the desktop is in use (desktop in use): only that user or "
            "root may replace or shorten it",
        ),
    ],
)
def test_a_refusal_names_who_paused_and_until_when(
    pause: dict[str, object], doing: str, message: str
) -> None:
    error = foreign_pause_error(pause, doing)
    assert (error.code, str(error), error.pause) == (proto.PERMISSION_DENIED, message, pause)


# --- line framing -----------------------------------------------------------------------


def test_lines_split_across_and_within_chunks() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b'{"op"') == []
    assert buffer.feed(b': "status"}\n{"op": "resume"}\n{"op"') == [
        b'{"op": "status"}',
        b'{"op": "resume"}',
    ]
    assert buffer.feed(b': "pause"}\n') == [b'{"op": "pause"}']
    assert buffer.feed(b"\n") == [b""]
    assert buffer.take_rest() == b""


def test_take_rest_returns_an_unterminated_line_once() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b'{"op": "status"}') == []
    assert buffer.take_rest() == b'{"op": "status"}'
    assert buffer.take_rest() == b""


def test_a_line_at_the_cap_is_accepted() -> None:
    buffer = LineBuffer(max_line=10)
    assert buffer.feed(b"x" * 10) == []
    assert buffer.feed(b"\n") == [b"x" * 10]


@pytest.mark.parametrize("chunks", [[b"x" * 11], [b"x" * 11 + b"\n"], [b"x" * 6, b"x" * 5 + b"\n"]])
def test_a_line_over_the_cap_is_refused(chunks: list[bytes]) -> None:
    buffer = LineBuffer(max_line=10)
    for chunk in chunks[:-1]:
        buffer.feed(chunk)
    with pytest.raises(ControlError) as raised:
        buffer.feed(chunks[-1])
    assert raised.value.code == proto.LINE_TOO_LONG


def test_the_default_cap_is_the_control_line_limit() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"x" * limits.MAX_CONTROL_LINE + b"\n") == [b"x" * limits.MAX_CONTROL_LINE]
    with pytest.raises(ControlError):
        buffer.feed(b"x" * (limits.MAX_CONTROL_LINE + 1))


# --- the documentation ------------------------------------------------------------------

DOC = Path(__file__).parents[2] / "docs" / "control.md"


def test_every_error_code_is_documented() -> None:
    codes = {
        value
        for name, value in vars(proto).items()
        if name.isupper() and not name.startswith("_") and isinstance(value, str)
    }
    text = DOC.read_text()
    assert len(codes) >= 10
    assert [code for code in sorted(codes) if f"`{code}`" not in text] == []


def test_documented_limits_match_the_code() -> None:
    text = DOC.read_text()
    assert f"| {limits.MAX_CONTROL_LINE // 1024} KiB " in text
    assert f"| {limits.MAX_CONTROL_RESPONSE // 2**20} MiB " in text
    assert f"| {limits.MAX_CONTROL_CONNECTIONS} " in text
    assert f"| {limits.CONTROL_IDLE_TIMEOUT:g} s " in text
    assert f"at most {int(limits.MAX_PAUSE_SECONDS)} " in text
    assert f"at most {limits.MAX_PAUSE_REASON} bytes" in text
