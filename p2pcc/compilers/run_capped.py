"""Running a compiler's probe commands with bounded time and output.

Probing runs whatever a user names as their compiler, so every command runs without a
shell, in its own process group, with a timeout and capped output: a hanging or
babbling "compiler" costs bounded time and memory, its whole process group is killed,
and the failure is a FingerprintError that names the command and says what to do.
Callers pass `LC_ALL=C` in the environment so the output parses the same everywhere.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping

from p2pcc.core import limits
from p2pcc.core.errors import FingerprintError
from p2pcc.core.fingerprint import excerpt

#: Seconds one probe command may take; a real compiler answers in milliseconds.
PROBE_TIMEOUT = 10.0

_CHUNK = 65536


def ask(compiler: str, flag: str, env: dict[str, str]) -> str:
    """The standard output of `compiler flag`, which must succeed."""
    returncode, output, errors = run_capped([compiler, flag], env)
    if returncode != 0:
        raise FingerprintError(
            f"'{os.path.basename(compiler)} {flag}' failed with status {returncode} "
            f"and said {excerpt(errors or output)}"
        )
    return output


def run_capped(
    argv: list[str],
    env: Mapping[str, str],
    timeout: float = PROBE_TIMEOUT,
    cap: int = limits.MAX_PROBE_OUTPUT,
) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `argv`, killed past `timeout` s or `cap` bytes."""
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            process_group=0,  # so a timeout kills whatever it spawned too
        )
    except OSError as error:
        raise FingerprintError(
            f"cannot run {argv[0]} ({error.strerror}); give the path of a gcc or clang compiler"
        ) from None
    shown = " ".join([os.path.basename(argv[0]), *argv[1:]])
    deadline = time.monotonic() + timeout
    with process:
        try:
            stdout, stderr = _read_capped(process, deadline, cap, shown)
            returncode = process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise _timed_out(shown, timeout) from None
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    return returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")


def _read_capped(
    process: subprocess.Popen[bytes], deadline: float, cap: int, shown: str
) -> tuple[bytes, bytes]:
    if process.stdout is None or process.stderr is None:
        raise RuntimeError("run_capped opens both pipes")
    out, err = process.stdout.fileno(), process.stderr.fileno()
    buffers = {out: bytearray(), err: bytearray()}
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(shown, remaining)
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                buffers[key.fd] += chunk
                if len(buffers[key.fd]) > cap:
                    raise FingerprintError(
                        f"'{shown}' printed more than {cap} bytes; "
                        "check that it is a working compiler"
                    )
    return bytes(buffers[out]), bytes(buffers[err])


def _timed_out(shown: str, timeout: float) -> FingerprintError:
    return FingerprintError(
        f"'{shown}' did not finish within {timeout:g} s; check that it is a working compiler"
    )
