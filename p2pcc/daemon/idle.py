"""Looking for a person at this desktop, and pausing the node while there is one.

Two activity sources answer "was the desktop used since the last look?":

* `InputDevices` reads keyboard and mouse events from the device nodes `event*` in
  `/dev/input` (injectable), without blocking and without grabbing them, so the
  desktop still gets every event.  Any bytes since the last look mean activity.
  Opening them needs root or the `input` group.
* `LogindSession` asks systemd-logind over D-Bus (with `busctl`) for the `IdleHint` of
  seat0's active session: not idle means in use, no active session means nobody there.

A source that cannot answer says so once in the log ("unavailable", with the reason)
and answers None until it can again; it never stops the daemon.  `serve_idle` looks
every `POLL_INTERVAL` seconds and lets `p2pcc.core.idle.decide` choose.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import trio

from p2pcc.core.idle import Action, IdlePolicy, IdleState, PauseKind, decide

log = logging.getLogger("p2pcc.daemon.idle")

INPUT_DIR = Path("/dev/input")

#: Seconds between looks: how long a person waits before this node pauses and hands
#: back the jobs it runs for peers (the owner first: within a second of their return,
#: with the hand-back's own ~0.1 s).  A look at six input devices costs ~30 us of CPU on
#: the test machine; logind is asked at its own pace (`LOGIND_INTERVAL`).
POLL_INTERVAL = 0.25

#: Seconds between logind queries (two `busctl` runs each); its idle hint is coarse anyway.
LOGIND_INTERVAL = 5.0

#: Seconds one `busctl` run may take before the answer counts as unavailable.
BUSCTL_TIMEOUT = 2.0

#: Bytes read from one device per look: enough to know it was used, bounded so a device
#: that never runs dry cannot hold the daemon.
READ_LIMIT = 64 * 1024

LOGIND = "org.freedesktop.login1"


class ActivitySource(Protocol):
    """Something that can tell whether a person used the desktop."""

    name: str

    async def look(self, now: float) -> bool | None:
        """True: used since the last look; False: not; None: cannot tell (unavailable)."""
        ...

    def close(self) -> None:
        """Release what the source holds open."""
        ...


class AutoPauser(Protocol):
    """The node as the idle task sees it (`p2pcc.core.node.LocalNode`)."""

    @property
    def resumes_by_hand(self) -> int: ...

    def pause_kind(self) -> PauseKind: ...

    def auto_pause(self, uid: int, now: float, *, hand_back: bool = True) -> bool: ...

    def auto_resume(self, now: float) -> bool: ...


class Availability:
    """Logs a source turning unavailable (once, with the reason) and available again."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reason: str | None = None  # why unavailable; None while it answers

    def unavailable(self, reason: str) -> None:
        if self.reason is None:
            log.warning("idle source %s is unavailable: %s", self.name, reason)
        self.reason = reason

    def available(self) -> None:
        if self.reason is not None:
            log.info("idle source %s is available again", self.name)
        self.reason = None


class InputDevices:
    """Keyboard/mouse activity: events read from `event*` device nodes in `directory`."""

    name = "input"

    def __init__(self, directory: Path = INPUT_DIR) -> None:
        self.directory = directory
        self.status = Availability(self.name)
        self._open: dict[str, int] = {}  # device name -> non-blocking fd

    async def look(self, now: float) -> bool | None:
        return self.poll()

    def poll(self) -> bool | None:
        """Whether any device delivered events since the last poll; None when none is open."""
        try:
            names = sorted(name for name in os.listdir(self.directory) if name.startswith("event"))
        except OSError as error:
            self.status.unavailable(f"cannot list {self.directory}: {error.strerror}")
            self.close()
            return None
        failures = self._reopen(names)
        if not self._open:
            why = failures[0] if failures else f"no input devices (event*) in {self.directory}"
            self.status.unavailable(why)
            return None
        self.status.available()
        drained = [self._drain(name) for name in list(self._open)]  # every one, no short cut
        return any(drained)

    def _reopen(self, names: Sequence[str]) -> list[str]:
        """Close devices that are gone, open new ones; why each failed device failed."""
        for name in set(self._open) - set(names):
            os.close(self._open.pop(name))
        failures = []
        for name in names:
            if name in self._open:
                continue
            path = self.directory / name
            try:
                self._open[name] = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as error:
                failures.append(f"cannot open {path}: {error.strerror}{_hint(error)}")
        return failures

    def _drain(self, name: str) -> bool:
        """Read what the device has; True if it had anything.  A device that fails is
        closed (it was unplugged) and opened again at the next poll if it is back."""
        fd, total = self._open[name], 0
        try:
            while total < READ_LIMIT:
                chunk = os.read(fd, READ_LIMIT - total)
                if not chunk:
                    break  # end of file: a FIFO without writer, a regular file
                total += len(chunk)
        except BlockingIOError:
            pass
        except OSError:
            os.close(self._open.pop(name))
        return total > 0

    def close(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()


def _hint(error: OSError) -> str:
    if error.errno in (errno.EACCES, errno.EPERM):
        return ' (run the daemon as root or in group input, or set idle.source = "logind")'
    return ""


class LogindSession:
    """Desktop activity as systemd-logind sees it: the `IdleHint` of `seat`'s active session."""

    name = "logind"

    def __init__(
        self,
        busctl: str = "busctl",
        seat: str = "seat0",
        interval: float = LOGIND_INTERVAL,
        timeout: float = BUSCTL_TIMEOUT,
    ) -> None:
        self.busctl = busctl
        self.seat = seat
        self.interval = interval
        self.timeout = timeout
        self.status = Availability(self.name)
        self._last: tuple[float, bool | None] | None = None

    async def look(self, now: float) -> bool | None:
        if self._last is not None and now - self._last[0] < self.interval:
            return self._last[1]
        answer = await self._ask()
        self._last = (now, answer)
        return answer

    async def _ask(self) -> bool | None:
        try:
            seat = f"/org/freedesktop/login1/seat/{self.seat}"
            session = active_session(await self._get(seat, "Seat", "ActiveSession"))
            if session is None:
                answer = False  # nobody is logged in at the seat
            else:
                answer = not idle_hint(await self._get(session, "Session", "IdleHint"))
        except BusctlError as error:
            self.status.unavailable(str(error))
            return None
        self.status.available()
        return answer

    async def _get(self, path: str, interface: str, prop: str) -> bytes:
        argv = [self.busctl, "--system", "--json=short", "get-property", LOGIND, path]
        argv += [f"{LOGIND}.{interface}", prop]
        try:
            with trio.fail_after(self.timeout):
                result = await trio.run_process(
                    argv,
                    capture_stdout=True,
                    capture_stderr=True,
                    stdin=subprocess.DEVNULL,
                    check=False,
                )
        except FileNotFoundError:
            raise BusctlError(f"{self.busctl} not found (install systemd)") from None
        except OSError as error:
            raise BusctlError(f"cannot run {self.busctl}: {error.strerror}") from None
        except trio.TooSlowError:
            raise BusctlError(f"busctl did not answer within {self.timeout:g} s") from None
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip().splitlines()
            raise BusctlError(f"busctl: {message[-1] if message else f'exit {result.returncode}'}")
        return bytes(result.stdout)

    def close(self) -> None:
        pass


class BusctlError(Exception):
    """busctl could not give an answer; the message says why, for the log."""


def _busctl_data(output: bytes, signature: str) -> object:
    try:
        document = json.loads(output)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BusctlError(f"busctl printed something other than JSON: {output[:80]!r}") from None
    if not isinstance(document, dict) or document.get("type") != signature:
        raise BusctlError(f"busctl answered {output[:80]!r}, expected type {signature}")
    return document.get("data")


def active_session(output: bytes) -> str | None:
    """The object path in busctl's JSON answer for `Seat.ActiveSession`; None when the
    seat has no active session."""
    data = _busctl_data(output, "(so)")
    if not (isinstance(data, list) and len(data) == 2 and all(isinstance(x, str) for x in data)):
        raise BusctlError(f"unexpected ActiveSession {data!r}")
    session_id, path = data
    return path if session_id and path.startswith("/org/freedesktop/login1/session/") else None


def idle_hint(output: bytes) -> bool:
    """The value in busctl's JSON answer for `Session.IdleHint`."""
    data = _busctl_data(output, "b")
    if not isinstance(data, bool):
        raise BusctlError(f"unexpected IdleHint {data!r}")
    return data


class EitherSource:
    """Several sources as one: used if any saw use, None only if none can tell."""

    def __init__(self, sources: Sequence[ActivitySource]) -> None:
        self.sources = tuple(sources)
        self.name = "+".join(source.name for source in self.sources)

    async def look(self, now: float) -> bool | None:
        answers = [await source.look(now) for source in self.sources]
        if any(answers):
            return True
        return None if all(answer is None for answer in answers) else False

    def close(self) -> None:
        for source in self.sources:
            source.close()


def make_source(kind: str, input_dir: Path = INPUT_DIR, busctl: str = "busctl") -> ActivitySource:
    """The source named by `idle.source`: "input", "logind" or "both"."""
    sources: list[ActivitySource] = []
    if kind in ("input", "both"):
        sources.append(InputDevices(input_dir))
    if kind in ("logind", "both"):
        sources.append(LogindSession(busctl))
    if not sources:
        raise ValueError(f"unknown idle source {kind!r}")
    return sources[0] if len(sources) == 1 else EitherSource(sources)


async def serve_idle(
    policy: IdlePolicy,
    node: AutoPauser,
    source: ActivitySource,
    *,
    uid: int,
    hand_back: bool = True,
    poll_interval: float = POLL_INTERVAL,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Pause the node while the desktop is in use, resume when it has rested (docs/idle.md);
    `uid` is recorded as the pauser of an automatic pause, `hand_back` says whether it
    stops the jobs running for peers (`core/hand_back.py`) or lets them finish."""
    state, resumes_seen = IdleState(), node.resumes_by_hand
    log.info(
        "pausing while the desktop is in use (source %s, in use for %g s after activity, "
        "resuming after %g s idle)",
        source.name,
        policy.active_within,
        policy.resume_after,
    )
    task_status.started()
    try:
        while True:
            now = trio.current_time()
            busy = await source.look(now)
            resumed_by_hand = node.resumes_by_hand != resumes_seen
            resumes_seen = node.resumes_by_hand
            state, action = decide(
                policy,
                state,
                now,
                busy=busy is True,
                pause=node.pause_kind(),
                resumed_by_hand=resumed_by_hand,
            )
            _act(node, action, now, state, uid=uid, hand_back=hand_back)
            await trio.sleep_until(now + poll_interval)
    finally:
        with contextlib.suppress(OSError):
            source.close()


def _act(
    node: AutoPauser, action: Action, now: float, state: IdleState, *, uid: int, hand_back: bool
) -> None:
    if action is Action.PAUSE and node.auto_pause(uid, now, hand_back=hand_back):
        log.info("the desktop is in use: paused%s", "" if hand_back else " (jobs finish)")
    elif action is Action.RESUME and node.auto_resume(now):
        log.info("the desktop has been idle for %.0f s: resumed", state.idle_for(now) or 0.0)
