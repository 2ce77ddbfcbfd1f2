"""The CLI's side of the control socket: one blocking request, one answer.

Plain `socket`, no trio: a command connects, sends one JSON line, reads one back and
exits.  The socket is `control` in the configured runtime directory.  A missing socket
or one nobody listens on means the daemon is not running, which the CLI reports with
its own exit status (EXIT_NOT_RUNNING) and a hint on how to start it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from p2pcc.config import load_config
from p2pcc.config.model import Config
from p2pcc.core import control_protocol as proto
from p2pcc.core import limits
from p2pcc.core.control_protocol import ControlError, PermissionDeniedError
from p2pcc.core.errors import P2pccError

#: File name of the control socket inside the runtime directory.
SOCKET_NAME = "control"

#: Seconds the CLI waits to connect, to send, and for each read of the answer.
ANSWER_TIMEOUT = 10.0

#: Exit statuses of the commands that talk to the daemon (1 and 2 are the CLI's own).
EXIT_NOT_RUNNING = 3
EXIT_PERMISSION_DENIED = 4

_RECEIVE_SIZE = 64 * 1024


class DaemonNotRunningError(P2pccError):
    """No daemon listens on the control socket."""


def control_socket_path(config: Config) -> Path:
    """Where the daemon of this configuration listens."""
    return config.runtime_dir / SOCKET_NAME


def ask_daemon(config_file: str | None, request: proto.Request) -> dict[str, Any]:
    """The daemon's result for `request`, the socket found from the configuration."""
    return send_request(control_socket_path(load_config(config_file, os.environ)), request)


def exit_status(error: P2pccError) -> int:
    """The CLI exit status for a failed request (documented in docs/control.md)."""
    if isinstance(error, DaemonNotRunningError):
        return EXIT_NOT_RUNNING
    if isinstance(error, PermissionDeniedError):
        return EXIT_PERMISSION_DENIED
    return 1


def send_request(
    path: Path, request: proto.Request, *, timeout: float = ANSWER_TIMEOUT
) -> dict[str, Any]:
    """Send one request to the socket at `path`; its result, or the error it answers raised."""
    with _connect(path, timeout) as sock:
        try:
            sock.sendall(proto.encode_request(request))
            return proto.decode_response(_read_line(sock))
        except TimeoutError:
            raise P2pccError(f"the p2pcc daemon did not answer within {timeout:g} s") from None
        except (ConnectionResetError, BrokenPipeError):
            raise ControlError(
                proto.BAD_RESPONSE, "the p2pcc daemon closed the connection without answering"
            ) from None


def _connect(path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError) as error:
        sock.close()
        why = "no control socket" if isinstance(error, FileNotFoundError) else "nothing listens"
        raise DaemonNotRunningError(
            f"the p2pcc daemon is not running ({why} at {path}); "
            "start it with `p2pcc daemon` or `systemctl start p2pcc`"
        ) from None
    except OSError as error:
        sock.close()
        raise P2pccError(f"cannot connect to {path}: {error.strerror or error}") from None
    return sock


def _read_line(sock: socket.socket) -> bytes:
    lines = proto.LineBuffer(limits.MAX_CONTROL_RESPONSE)
    while True:
        data = sock.recv(_RECEIVE_SIZE)
        if not data:
            raise ControlError(
                proto.BAD_RESPONSE, "the p2pcc daemon closed the connection without answering"
            )
        try:
            complete = lines.feed(data)
        except ControlError as error:
            raise ControlError(proto.BAD_RESPONSE, str(error)) from None
        if complete:
            return complete[0]
