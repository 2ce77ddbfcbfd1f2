"""distcc's state files: golden records as distcc 3.4 writes them, every truncation, any
bytes give a record or a ValueError, and the names that lead to them."""

from __future__ import annotations

import contextlib
import struct
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core.distcc_state import (
    MAGIC,
    MAX_PID,
    STATE_SIZE,
    Phase,
    TaskState,
    parse_state,
    pid_of_name,
    source_of_cmdline,
)

X86_64 = struct.calcsize("@NLL128s128siiP") == 296 and sys.byteorder == "little"


def record(
    pid: int = 4242,
    file: bytes = b"a.c",
    host: bytes = b"127.0.0.1:3632",
    slot: int = 1,
    phase: int = Phase.COMPILE,
    *,
    size: int = STATE_SIZE,
    magic: int = MAGIC,
) -> bytes:
    """A state file as distcc writes it (`next` is a stale pointer: undefined in files)."""
    return struct.pack("@NLL128s128siiP", size, magic, pid, file, host, slot, phase, 0xDEAD)


#: Files read from Debian's distcc 3.4 on x86_64 during `make -j4 CC="distcc gcc"` with
#: DISTCC_HOSTS="127.0.0.1:PORT/2 localhost/2": one remote compile (pid 32498, f1.c)
#: while it preprocessed and while it compiled, one local compile (pid 32516, f5.c).
REMOTE_PREPROCESSING = bytes.fromhex(
    "28010000000000000048494400000000f27e0000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000006c6f63616c686f73"
    "7400000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000100000003000000"
    "0000000000000000"
)
REMOTE_COMPILING = bytes.fromhex(
    "28010000000000000048494400000000f27e00000000000066312e6300000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000003132372e302e302e"
    "3100000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000100000005000000"
    "0000000000000000"
)
LOCAL_COMPILING = bytes.fromhex(
    "28010000000000000048494400000000047f00000000000066352e6300000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000006c6f63616c686f73"
    "7400000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000005000000"
    "0000000000000000"
)


@pytest.mark.skipif(not X86_64, reason="the golden bytes are x86_64's layout")
def test_files_written_by_distcc_3_4_on_x86_64() -> None:
    assert STATE_SIZE == 296
    # The remote compile's local record: no file, host localhost, its local slot.
    assert parse_state(REMOTE_PREPROCESSING) == TaskState(32498, "", "localhost", 1, Phase.CPP)
    # The host is the DISTCC_HOSTS entry's name, without its port.
    compiling = TaskState(32498, "f1.c", "127.0.0.1", 1, Phase.COMPILE)
    assert parse_state(REMOTE_COMPILING) == compiling
    assert parse_state(LOCAL_COMPILING) == TaskState(32516, "f5.c", "localhost", 0, Phase.COMPILE)


def test_a_local_compile_and_a_remote_preprocess_as_distcc_writes_them() -> None:
    assert parse_state(record(file=b"x.cc", host=b"localhost", slot=0)) == TaskState(
        4242, "x.cc", "localhost", 0, Phase.COMPILE
    )
    # The remote job's local record: no file name, host localhost, CPP.
    assert parse_state(record(file=b"", host=b"localhost", phase=Phase.CPP)).file == ""


def test_phases_are_distccs_numbers_and_names() -> None:
    assert [(p.value, p.label) for p in Phase] == [
        (0, "Startup"),
        (1, "Blocked"),
        (2, "Connect"),
        (3, "Preprocess"),
        (4, "Send"),
        (5, "Compile"),
        (6, "Receive"),
        (7, "Done"),
    ]


def test_every_truncation_and_extension_is_refused() -> None:
    real = (REMOTE_PREPROCESSING, REMOTE_COMPILING, LOCAL_COMPILING) if X86_64 else ()
    for data in (record(), *real):
        for end in range(len(data)):
            with pytest.raises(ValueError, match="bytes"):
                parse_state(data[:end])
        with pytest.raises(ValueError, match="bytes"):
            parse_state(data + b"\0")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (record(magic=MAGIC + 1), "magic"),
        (record(size=STATE_SIZE + 8), "struct_size"),
        (record(pid=0), "pid"),
        (record(pid=MAX_PID + 1), "pid"),
        (record(slot=-1), "slot"),
        (record(slot=10_000), "slot"),
        (record(phase=8), "phase"),
        (record(phase=-1), "phase"),
    ],
)
def test_a_field_out_of_range_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_state(data)


def test_names_end_at_nul_and_never_carry_control_characters() -> None:
    state = parse_state(record(file=b"a\x1b[31m.c\0junk", host=b"h\xff\x7f" + b"x" * 125))
    assert state.file == "a?[31m.c"
    # The last byte is never part of a name (distcc's reader forces it to NUL).
    assert state.host == "h\ufffd?" + "x" * 124


@given(st.binary(max_size=STATE_SIZE + 16))
def test_any_bytes_give_a_record_or_a_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        assert isinstance(parse_state(data), TaskState)


@given(
    st.integers(1, MAX_PID),
    st.binary(max_size=128),
    st.binary(max_size=128),
    st.integers(0, 9999),
    st.sampled_from(Phase),
)
def test_any_valid_record_parses_to_its_fields(
    pid: int, file: bytes, host: bytes, slot: int, phase: Phase
) -> None:
    state = parse_state(record(pid, file, host, slot, phase))
    assert (state.pid, state.slot, state.phase) == (pid, slot, phase)
    assert len(state.file) <= 127
    assert len(state.host) <= 127


@pytest.mark.parametrize(
    ("name", "pid"),
    [
        ("binstate_1234", 1234),
        ("binstate_4194304", MAX_PID),
        ("binstate_4194305", None),
        ("binstate_01", None),
        ("binstate_", None),
        ("binstate_12a", None),
        ("binstate_١٢", None),  # Arabic-Indic digits: isdigit() but not a pid
        ("binstate_99999999999999999999", None),
        ("1234", None),
        (".binstate_12.tmp", None),
    ],
)
def test_pid_of_a_state_files_name(name: str, pid: int | None) -> None:
    assert pid_of_name(name) == pid


@pytest.mark.parametrize(
    ("cmdline", "source"),
    [
        (b"distcc\0gcc\0-c\0src/a.c\0-o\0a.o\0", "a.c"),
        (b"gcc\0-O2\0-c\0/w/x/lib.cpp\0-MF\0lib.d\0-o\0lib.o\0", "lib.cpp"),
        (b"gcc\0-o\0prog\0a.o\0b.o\0", ""),
        (b"gcc\0-c\0-x\0c\0.c\0", ""),
        (b"", ""),
    ],
)
def test_the_source_of_a_command_line(cmdline: bytes, source: str) -> None:
    assert source_of_cmdline(cmdline) == source
