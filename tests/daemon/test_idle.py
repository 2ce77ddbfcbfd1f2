"""The idle task at exact virtual times, and the real activity sources on real files."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio

from p2pcc.core.idle import IdlePolicy, PauseKind
from p2pcc.core.model import NodeState
from p2pcc.core.node import LocalNode
from p2pcc.core.pause import AUTO_PAUSE_REASON
from p2pcc.daemon.idle import (
    POLL_INTERVAL,
    BusctlError,
    EitherSource,
    InputDevices,
    LogindSession,
    active_session,
    idle_hint,
    make_source,
    serve_idle,
)
from tests.core.local_nodes import WALL, make_node

POLICY = IdlePolicy(active_within=60.0, resume_after=300.0)


class ScriptedSource:
    """Busy during the given [start, end) spans of virtual time; records each look."""

    name = "scripted"

    def __init__(self, *busy: tuple[float, float], answer_none: bool = False) -> None:
        self.busy = busy
        self.answer_none = answer_none
        self.looks: list[float] = []
        self.closed = False

    async def look(self, now: float) -> bool | None:
        self.looks.append(now)
        if self.answer_none:
            return None
        return any(start <= now < end for start, end in self.busy)

    def close(self) -> None:
        self.closed = True


def kind_at(node: LocalNode) -> PauseKind:
    return node.pause_kind()


def state_of(node: LocalNode) -> NodeState:
    return node.status.state


async def run_idle(node: LocalNode, source: ScriptedSource, nursery: trio.Nursery) -> None:
    await nursery.start(
        lambda task_status: serve_idle(POLICY, node, source, uid=0, task_status=task_status)
    )


async def test_activity_pauses_within_a_look_and_rest_resumes_exactly(
    autojump_clock: trio.abc.Clock,
) -> None:
    node = make_node(1)
    node.set_serving(True, 0.0)
    source = ScriptedSource((10.0, 13.0))
    async with trio.open_nursery() as nursery:
        await run_idle(node, source, nursery)
        await trio.sleep_until(9.9)
        assert kind_at(node) is PauseKind.NONE
        await trio.sleep_until(10.0 + 1e-6)
        assert kind_at(node) is PauseKind.AUTOMATIC
        assert state_of(node) is NodeState.PAUSED
        assert node.status.pause_reason == AUTO_PAUSE_REASON
        last_busy = 13.0 - POLL_INTERVAL  # the last look before 13
        await trio.sleep_until(last_busy + 299.9)
        assert kind_at(node) is PauseKind.AUTOMATIC
        await trio.sleep_until(last_busy + 300.0 + 1e-6)
        assert kind_at(node) is PauseKind.NONE
        assert state_of(node) is NodeState.ACTIVE
        nursery.cancel_scope.cancel()
    assert source.looks[:3] == [0.0, POLL_INTERVAL, 2 * POLL_INTERVAL]
    assert source.closed


@pytest.mark.parametrize("hand_back", [True, False])
async def test_the_automatic_pause_hands_back_as_configured(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture, hand_back: bool
) -> None:
    node = make_node(1)
    source = ScriptedSource((1.0, 2.0))
    with caplog.at_level(logging.INFO, "p2pcc.daemon.idle"):
        async with trio.open_nursery() as nursery:
            task = partial(serve_idle, POLICY, node, source, uid=0, hand_back=hand_back)
            await nursery.start(task)
            await trio.sleep_until(1.5)
            nursery.cancel_scope.cancel()
    assert node.pause is not None
    assert node.pause.hand_back is hand_back
    told = "the desktop is in use: paused" + ("" if hand_back else " (jobs finish)")
    assert told in [record.getMessage() for record in caplog.records]


async def test_a_manual_pause_outlasts_the_rest_and_takes_over_from_the_automatic_one(
    autojump_clock: trio.abc.Clock,
) -> None:
    node = make_node(1)
    source = ScriptedSource((10.0, 11.0))
    async with trio.open_nursery() as nursery:
        await run_idle(node, source, nursery)
        await trio.sleep_until(20.5)
        assert kind_at(node) is PauseKind.AUTOMATIC
        node.pause_for(1000, "meeting", uid=1000, now=trio.current_time(), wall=WALL)
        await trio.sleep_until(1000.0)  # long rested: an automatic pause would have ended
        assert kind_at(node) is PauseKind.MANUAL
        assert node.pause is not None
        assert node.pause.reason == "meeting"
        nursery.cancel_scope.cancel()


async def test_a_resume_by_hand_keeps_the_node_lent_while_the_person_stays(
    autojump_clock: trio.abc.Clock,
) -> None:
    node = make_node(1)
    source = ScriptedSource((10.0, 100.0), (500.0, 501.0))
    async with trio.open_nursery() as nursery:
        await run_idle(node, source, nursery)
        await trio.sleep_until(20.5)
        assert kind_at(node) is PauseKind.AUTOMATIC
        assert node.resume(trio.current_time())  # `p2pcc resume` while at the desk
        await trio.sleep_until(499.5)
        assert kind_at(node) is PauseKind.NONE  # busy until 99, yet never paused again
        await trio.sleep_until(500.0 + 1e-6)
        assert kind_at(node) is PauseKind.AUTOMATIC  # rested 300 s since: armed again
        nursery.cancel_scope.cancel()


async def test_a_source_that_cannot_tell_never_pauses(autojump_clock: trio.abc.Clock) -> None:
    node = make_node(1)
    source = ScriptedSource(answer_none=True)
    async with trio.open_nursery() as nursery:
        await run_idle(node, source, nursery)
        await trio.sleep_until(99.6)
        nursery.cancel_scope.cancel()
    assert kind_at(node) is PauseKind.NONE
    assert len(source.looks) == int(99.6 / POLL_INTERVAL) + 1  # one a look from 0 on


# --- either source ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ((None, None), None),
        ((None, False), False),
        ((False, True), True),
        ((None, True), True),
        ((False, False), False),
    ],
)
async def test_either_source_is_busy_if_any_is_and_unknown_only_if_all_are(
    answers: tuple[bool | None, bool | None], expected: bool | None
) -> None:
    sources = [
        ScriptedSource((0, 1)) if a else ScriptedSource(answer_none=a is None) for a in answers
    ]
    either = EitherSource(sources)
    assert await either.look(0.5) is expected
    assert all(source.looks == [0.5] for source in sources)  # each one is looked at
    either.close()
    assert all(source.closed for source in sources)


def test_make_source_follows_the_configuration(tmp_path: Path) -> None:
    assert isinstance(make_source("input", input_dir=tmp_path), InputDevices)
    assert isinstance(make_source("logind"), LogindSession)
    both = make_source("both", input_dir=tmp_path)
    assert isinstance(both, EitherSource)
    assert both.name == "input+logind"
    with pytest.raises(ValueError, match="unknown idle source"):
        make_source("x11")


# --- the input-device source, on real files and device nodes ---------------------------------


@pytest.fixture
def devices(tmp_path: Path) -> Iterator[InputDevices]:
    source = InputDevices(tmp_path)
    yield source
    source.close()


def test_bytes_appended_to_a_device_file_are_activity_once(
    tmp_path: Path, devices: InputDevices
) -> None:
    (tmp_path / "event0").write_bytes(b"")
    (tmp_path / "event1").write_bytes(b"old events already there")
    (tmp_path / "mouse0").write_bytes(b"")
    assert devices.poll() is True  # what a device holds when first opened counts once
    assert devices.poll() is False
    with (tmp_path / "event0").open("ab") as device:
        device.write(b"\x00" * 24)
    assert devices.poll() is True
    assert devices.poll() is False
    with (tmp_path / "mouse0").open("ab") as other:
        other.write(b"\x00" * 24)
    assert devices.poll() is False  # only event* nodes are read


def test_events_written_into_a_fifo_are_activity(tmp_path: Path, devices: InputDevices) -> None:
    fifo = tmp_path / "event3"
    os.mkfifo(fifo)
    assert devices.poll() is False  # opened without a writer and without blocking
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        assert devices.poll() is False
        os.write(writer, b"\x01" * 24)
        assert devices.poll() is True
        assert devices.poll() is False
    finally:
        os.close(writer)


def test_a_device_that_floods_is_read_boundedly(tmp_path: Path, devices: InputDevices) -> None:
    os.mknod(tmp_path / "event0", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero
    assert devices.poll() is True
    assert devices.poll() is True


def test_a_quiet_character_device_is_available_and_idle(
    tmp_path: Path, devices: InputDevices
) -> None:
    os.mknod(tmp_path / "event0", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null
    assert devices.poll() is False
    assert devices.status.reason is None


def test_unplugging_and_plugging_a_device_is_followed(
    tmp_path: Path, devices: InputDevices
) -> None:
    (tmp_path / "event0").write_bytes(b"")
    (tmp_path / "event7").write_bytes(b"")
    assert devices.poll() is False
    fds_open = len(os.listdir("/proc/self/fd"))
    (tmp_path / "event7").unlink()
    assert devices.poll() is False
    assert len(os.listdir("/proc/self/fd")) == fds_open - 1  # the unplugged one is closed
    (tmp_path / "event7").write_bytes(b"\x02" * 24)
    assert devices.poll() is True


def test_an_input_device_without_a_driver_is_unavailable_once(
    tmp_path: Path, devices: InputDevices, caplog: pytest.LogCaptureFixture
) -> None:
    # Major 13 is evdev; minor 64 is event0, which no driver provides in this sandbox.
    os.mknod(tmp_path / "event0", stat.S_IFCHR | 0o600, os.makedev(13, 64))
    with caplog.at_level(logging.INFO, logger="p2pcc"):
        assert devices.poll() is None
        assert devices.poll() is None
        (tmp_path / "event0").unlink()
        (tmp_path / "event1").write_bytes(b"")
        assert devices.poll() is False
    messages = [record.message for record in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith(
        f"idle source input is unavailable: cannot open {tmp_path / 'event0'}: No such"
    )
    assert messages[1] == "idle source input is available again"


def test_no_devices_or_no_directory_is_unavailable(tmp_path: Path) -> None:
    empty = InputDevices(tmp_path)
    assert empty.poll() is None
    assert empty.status.reason == f"no input devices (event*) in {tmp_path}"
    missing = InputDevices(tmp_path / "input")
    assert missing.poll() is None
    assert missing.status.reason == f"cannot list {tmp_path / 'input'}: No such file or directory"


def test_this_machines_input_devices_answer_or_say_why_not() -> None:
    source = InputDevices()
    try:
        answer = source.poll()
    finally:
        source.close()
    if answer is None:
        assert source.status.reason
    else:
        assert source.status.reason is None


# --- the logind source -----------------------------------------------------------------------

SESSION = "/org/freedesktop/login1/session/_32"


def fake_busctl(tmp_path: Path, *, active: str, idle: str, delay: float = 0) -> Path:
    """A busctl stand-in answering like systemd 252's `--json=short get-property`, and
    logging each call."""
    script = tmp_path / "busctl"
    calls = tmp_path / "calls"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{calls}"\n'
        f"sleep {delay}\n"
        'case "$*" in\n'
        f"  *ActiveSession*) echo '{active}' ;;\n"
        f'  *IdleHint*) cat "{tmp_path / "idle"}" ;;\n'
        "esac\n"
    )
    script.chmod(0o755)
    (tmp_path / "idle").write_text(idle)
    return script


ACTIVE = '{"type":"(so)","data":["32","' + SESSION + '"]}'
NOBODY = '{"type":"(so)","data":["","/"]}'
NOT_IDLE = '{"type":"b","data":false}'
IDLE = '{"type":"b","data":true}'


async def test_logind_says_busy_while_the_active_session_is_not_idle(tmp_path: Path) -> None:
    busctl = fake_busctl(tmp_path, active=ACTIVE, idle=NOT_IDLE)
    source = LogindSession(str(busctl), interval=5.0)
    with trio.fail_after(10):
        assert await source.look(0.0) is True
        (tmp_path / "idle").write_text(IDLE)
        assert await source.look(4.9) is True  # within the interval: not asked again
        assert await source.look(5.0) is False
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 4
    assert calls[0] == (
        "--system --json=short get-property org.freedesktop.login1 "
        "/org/freedesktop/login1/seat/seat0 org.freedesktop.login1.Seat ActiveSession"
    )
    assert calls[1].endswith(f"{SESSION} org.freedesktop.login1.Session IdleHint")


async def test_logind_with_nobody_at_the_seat_is_idle(tmp_path: Path) -> None:
    source = LogindSession(str(fake_busctl(tmp_path, active=NOBODY, idle=NOT_IDLE)))
    with trio.fail_after(10):
        assert await source.look(0.0) is False
    assert len((tmp_path / "calls").read_text().splitlines()) == 1


async def test_a_busctl_that_hangs_is_unavailable(tmp_path: Path) -> None:
    busctl = fake_busctl(tmp_path, active=ACTIVE, idle=IDLE, delay=30)
    source = LogindSession(str(busctl), timeout=0.2)
    with trio.fail_after(10):
        assert await source.look(0.0) is None
    assert source.status.reason == "busctl did not answer within 0.2 s"


async def test_a_missing_busctl_is_unavailable(tmp_path: Path) -> None:
    source = LogindSession(str(tmp_path / "no-busctl"))
    with trio.fail_after(10):
        assert await source.look(0.0) is None
    assert source.status.reason == f"{tmp_path / 'no-busctl'} not found (install systemd)"


async def test_this_machines_logind_answers_or_is_unavailable_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    if shutil.which("busctl") is None:
        pytest.skip("no busctl on this machine")
    source = LogindSession(interval=0.0)
    with caplog.at_level(logging.INFO, logger="p2pcc"), trio.fail_after(10):
        first = await source.look(0.0)
        second = await source.look(1.0)
    if first is None:
        # No system bus or no logind here: said once, clearly, and nothing crashed.
        assert second is None
        (record,) = caplog.records
        assert record.message.startswith("idle source logind is unavailable: busctl: ")
    else:
        assert isinstance(first, bool)
        assert not caplog.records


@pytest.mark.parametrize(
    "output",
    [b"", b'(so) "2" "/x"', b'{"type":"b","data":true}', b'{"type":"(so)","data":["2"]}'],
)
def test_unexpected_active_session_answers_are_errors(output: bytes) -> None:
    with pytest.raises(BusctlError):
        active_session(output)


@pytest.mark.parametrize("output", [b"b true", b'{"type":"b","data":1}', b'{"type":"s"}'])
def test_unexpected_idle_hint_answers_are_errors(output: bytes) -> None:
    with pytest.raises(BusctlError):
        idle_hint(output)


def test_the_answers_are_read() -> None:
    assert active_session(ACTIVE.encode()) == SESSION
    assert active_session(NOBODY.encode()) is None
    assert (idle_hint(IDLE.encode()), idle_hint(NOT_IDLE.encode())) == (True, False)
