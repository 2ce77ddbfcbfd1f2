"""The control socket: a unix stream socket where local users ask the daemon things.

Any local user may connect (socket mode 0666): status and pause are open to all, and the
handler refuses to end or replace a pause for anyone but root or the user who paused,
identified by the kernel (SO_PEERCRED), never by what the client claims.  The protocol
is JSON lines (`p2pcc.core.control_protocol`, docs/control.md).  The server knows
nothing of the daemon: it calls a `ControlHandler`.  Every failure becomes an error
response; a client is disconnected only for an over-long line, silence, or when too
many are connected.

Lanes, so that no local user can crowd out the others (numbers in
`p2pcc.core.rate_limit` and `p2pcc.core.limits`): every uid but root may hold a few
connections at once and spend a budget of requests, and of pauses and resumes, per
second (`ControlBudget`); over it, a request is answered `busy`.  A connection must
bring each request line whole within the idle timeout, or is closed.  Refusals
(`busy`, `permission-denied`) are logged once per uid and kind a minute, so a flood
costs a bounded number of log lines.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import stat
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, assert_never

import trio

from p2pcc.core import control_protocol as proto
from p2pcc.core import limits
from p2pcc.core.control_protocol import ControlError, PermissionDeniedError
from p2pcc.core.errors import P2pccError
from p2pcc.core.rate_limit import MAX_CONNECTIONS_PER_UID, ControlBudget, Reports

__all__ = [
    "ControlError",
    "ControlHandler",
    "ControlSocketError",
    "Lanes",
    "PeerCredentials",
    "PermissionDeniedError",
    "SocketInUseError",
    "answer",
    "serve_control",
]

log = logging.getLogger("p2pcc.daemon.control")

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_RECEIVE_SIZE = 16 * 1024
_BACKLOG = 64


class ControlHandler(Protocol):
    """What the daemon answers; methods may raise `ControlError` (e.g. PermissionDeniedError)."""

    def status(self) -> dict[str, Any]:
        """The JSON-ready status snapshot (docs/status-json.md)."""
        ...

    def pause(
        self, seconds: float | None, reason: str, uid: int, *, hand_back: bool = False
    ) -> dict[str, Any]:
        """Pause for `seconds` (None: until resumed) on behalf of `uid`, handing back the
        jobs running for peers if `hand_back`; the new pause state."""
        ...

    def resume(self, uid: int) -> dict[str, Any]:
        """End the pause on behalf of `uid` (see `may_resume`); the new pause state."""
        ...

    def hosts(self, fingerprint: str) -> dict[str, Any]:
        """The wrapper's choice for this compiler: {"hosts": DISTCC_HOSTS, "jobs": int}."""
        ...

    def remeasure(self, peers: tuple[str, ...], uid: int) -> dict[str, Any]:
        """Forget what was measured of `peers` (all when empty) on behalf of `uid`."""
        ...


class ControlSocketError(P2pccError):
    """The control socket cannot be set up (directory, path or bind failure)."""


class SocketInUseError(ControlSocketError):
    """The control socket path is taken: by a live daemon, or by something not a socket."""


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """Who is at the other end of a connection, as the kernel saw it at connect time."""

    pid: int
    uid: int
    gid: int


def peer_credentials(sock: trio.socket.SocketType) -> PeerCredentials:
    """The SO_PEERCRED credentials of a connected unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid)


def stream_credentials(stream: trio.SocketStream) -> PeerCredentials:
    """The SO_PEERCRED credentials of the client at the other end of `stream`."""
    return peer_credentials(stream.socket)


@dataclass
class Lanes:
    """What each uid may still ask (`ControlBudget`), and which refusals get a log line."""

    budget: ControlBudget = field(default_factory=ControlBudget)
    reports: Reports = field(default_factory=Reports)

    def admit(self, uid: int, now: float, *, change: bool = False) -> None:
        """Spend one request of `uid` (a pause, resume or remeasure when `change`); BUSY
        if over."""
        refusal = self.budget.change(uid, now) if change else self.budget.request(uid, now)
        if refusal:
            raise ControlError(proto.BUSY, refusal)

    def refused(self, caller: PeerCredentials, error: ControlError, now: float) -> None:
        """Log a refusal: bad requests at debug level only, `busy` and `permission-denied`
        once per uid and kind a minute (any local user could otherwise flood the log)."""
        if error.code not in (proto.BUSY, proto.PERMISSION_DENIED):
            log.debug("control: pid %d uid %d: %s: %s", caller.pid, caller.uid, error.code, error)
            return
        unreported = self.reports.due((caller.uid, error.code), now)
        if unreported is not None:
            since = f" ({unreported} more since the last such line)" if unreported else ""
            log.info(
                "control: pid %d uid %d: %s: %s%s",
                caller.pid,
                caller.uid,
                error.code,
                error,
                since,
            )


def answer(
    line: bytes, handler: ControlHandler, caller: PeerCredentials, lanes: Lanes, now: float
) -> bytes:
    """The response line for one request line at `now` (monotonic); never raises."""
    try:
        lanes.admit(caller.uid, now)
        request = proto.parse_request(line)
        if isinstance(request, proto.PauseRequest | proto.ResumeRequest | proto.RemeasureRequest):
            lanes.admit(caller.uid, now, change=True)
        return proto.encode_result(_dispatch(request, handler, caller))
    except ControlError as error:
        lanes.refused(caller, error, now)
        return proto.encode_error(error)
    except P2pccError as error:
        log.warning("control: pid %d uid %d: failed: %s", caller.pid, caller.uid, error)
        return proto.encode_error(ControlError(proto.FAILED, str(error)))
    except Exception:
        # A bug in the handler must cost one request, not the daemon.
        log.exception("control: request from pid %d failed", caller.pid)
        return proto.encode_error(ControlError(proto.INTERNAL, "internal error; see the log"))


def _dispatch(
    request: proto.Request, handler: ControlHandler, caller: PeerCredentials
) -> dict[str, Any]:
    match request:
        case proto.StatusRequest():
            result = handler.status()
        case proto.PauseRequest(seconds=seconds, reason=reason, hand_back=hand_back):
            # which logs what it did
            result = handler.pause(seconds, reason, caller.uid, hand_back=hand_back)
        case proto.ResumeRequest():
            result = handler.resume(caller.uid)
        case proto.HostsRequest(fingerprint=fingerprint):
            result = handler.hosts(fingerprint)
        case proto.RemeasureRequest(peers=peers):
            result = handler.remeasure(peers, caller.uid)  # which logs what it did
        case _:
            assert_never(request)
    if not isinstance(result, dict):
        raise TypeError(f"handler returned {type(result).__name__}, not a dict")
    return result


async def serve_control(
    path: Path,
    handler: ControlHandler,
    *,
    idle_timeout: float = limits.CONTROL_IDLE_TIMEOUT,
    max_connections: int = limits.MAX_CONTROL_CONNECTIONS,
    max_per_uid: int = MAX_CONNECTIONS_PER_UID,
    credentials: Callable[[trio.SocketStream], PeerCredentials] = stream_credentials,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control socket at `path` until cancelled, then remove it; `credentials`
    says who a client is (the kernel's answer; tests give their own)."""
    await _clear_stale_socket(path)
    try:
        _ensure_directory(path.parent)
        listener, identity = await _listen(path)
    except OSError as error:
        raise ControlSocketError(
            f"{path}: cannot create the control socket: {error.strerror or error}"
        ) from None
    connections = _Connections(handler, idle_timeout, max_connections, max_per_uid, credentials)
    log.info("control: listening on %s", path)
    try:
        async with listener:
            task_status.started()
            await trio.serve_listeners(connections.serve, [listener])
    finally:
        _remove_own_socket(path, identity)


async def _clear_stale_socket(path: Path) -> None:
    """Remove a socket left by a dead daemon; refuse a live one or a non-socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketInUseError(f"{path}: exists and is not a socket; move it away and restart")
    try:
        stream = await trio.open_unix_socket(str(path))
    except ConnectionRefusedError:
        log.info("control: removing stale socket %s", path)
        path.unlink(missing_ok=True)
        return
    except FileNotFoundError:
        return
    await stream.aclose()
    raise SocketInUseError(
        f"{path}: another p2pcc daemon is listening there; stop it first "
        "(systemctl stop p2pcc) or give this one another runtime_dir"
    )


def _ensure_directory(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(parents=True)
        # 0755 whatever the umask: other users must be able to reach the socket.
        directory.chmod(0o755)
    elif not directory.stat().st_mode & stat.S_IXOTH:
        log.info("control: %s is closed to other users; only its owner can use p2pcc", directory)


async def _listen(path: Path) -> tuple[trio.SocketListener, tuple[int, int]]:
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(str(path))
        path.chmod(0o666)  # anyone local may ask; the handler decides who may do what
        identity = _file_identity(path)
        sock.listen(_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock), identity


def _file_identity(path: Path) -> tuple[int, int]:
    info = path.lstat()
    return info.st_dev, info.st_ino


def _remove_own_socket(path: Path, identity: tuple[int, int]) -> None:
    # Only our own file: if someone replaced it meanwhile, it is theirs to clean up.
    try:
        if _file_identity(path) == identity:
            path.unlink()
    except FileNotFoundError:
        pass
    log.info("control: closed %s", path)


@dataclass
class _Connections:
    """Serves each accepted connection: request lines in, response lines out."""

    handler: ControlHandler
    idle_timeout: float
    max_connections: int
    max_per_uid: int  # root excepted
    credentials: Callable[[trio.SocketStream], PeerCredentials]
    lanes: Lanes = field(default_factory=Lanes)
    held: Counter[int] = field(default_factory=Counter)  # uid -> connections being served

    async def serve(self, stream: trio.SocketStream) -> None:
        """Serve one client until it leaves, errs or idles; answer "busy" when full."""
        # A client that went away (BrokenResourceError) has nothing more to be told.
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError):
                await self._serve_if_room(stream, self.credentials(stream))

    async def _serve_if_room(self, stream: trio.SocketStream, caller: PeerCredentials) -> None:
        refusal = self._no_room_for(caller.uid)
        if refusal:
            busy = ControlError(proto.BUSY, refusal)
            self.lanes.refused(caller, busy, trio.current_time())
            await self._send(stream, proto.encode_error(busy))
            return
        self.held[caller.uid] += 1
        try:
            await self._converse(stream, caller)
        finally:
            self.held[caller.uid] -= 1
            if not self.held[caller.uid]:
                del self.held[caller.uid]

    def _no_room_for(self, uid: int) -> str:
        """Why a new connection of `uid` cannot be served now, or ""."""
        if self.held.total() >= self.max_connections:
            return "too many control connections; try again"
        if uid != 0 and self.held[uid] >= self.max_per_uid:
            return (
                f"uid {uid} has {self.held[uid]} control connections open already, the most "
                "one user may; close one and try again"
            )
        return ""

    async def _converse(self, stream: trio.SocketStream, caller: PeerCredentials) -> None:
        lines = proto.LineBuffer()
        while True:
            try:
                batch = await self._receive_lines(stream, lines)
            except ControlError as error:
                log.debug("control: pid %d: %s", caller.pid, error)
                await self._send(stream, proto.encode_error(error))
                return
            if not batch:
                return
            for line in batch:
                response = answer(line, self.handler, caller, self.lanes, trio.current_time())
                if not await self._send(stream, response):
                    return

    async def _receive_lines(
        self, stream: trio.SocketStream, lines: proto.LineBuffer
    ) -> list[bytes]:
        """The next non-blank lines; [] at end of stream; raises TIMEOUT or LINE_TOO_LONG."""
        with trio.move_on_after(self.idle_timeout):
            while True:
                data = await stream.receive_some(_RECEIVE_SIZE)
                # At end of stream, a last line without a newline still counts.
                complete = lines.feed(data) if data else [lines.take_rest()]
                complete = [line for line in complete if line.strip()]
                if complete or not data:
                    return complete
        raise ControlError(
            proto.TIMEOUT, f"no complete request within {self.idle_timeout:g} s; closing"
        )

    async def _send(self, stream: trio.SocketStream, data: bytes) -> bool:
        """Send `data`; False if the client does not take it within the idle timeout."""
        with trio.move_on_after(self.idle_timeout):
            await stream.send_all(data)
            return True
        return False
