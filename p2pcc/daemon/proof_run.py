"""Running one proof (`p2pcc.core.proof`): the tiny file compiled here and through
distcc on one peer, in a scratch directory of its own, within `proof.TIMEOUT`.

Shared by the daemon's periodic proofs (`p2pcc.daemon.proofs`) and `p2pcc doctor
--peers`, so both send exactly the same job.  The local compile comes first: when our
own compiler fails, the peer is not asked at all.  The turnaround is distcc's whole
run, connection and transfers included, as a build's job would take it.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import trio

from p2pcc.core import proof
from p2pcc.core.proof import Outcome, ProofResult, ProofTarget


async def run_proof(
    target: ProofTarget,
    *,
    distcc: str,
    env: Mapping[str, str],
    leave_out: Collection[str] = (),
    timeout: float = proof.TIMEOUT,
) -> ProofResult:
    """Prove `target` now; never raises for what the peer or the programs do."""
    at, wall = trio.current_time(), time.time()
    with tempfile.TemporaryDirectory(prefix="p2pcc-proof-") as scratch:
        where = Path(scratch)
        source = proof.source_name(target.language)
        (where / source).write_text(proof.SOURCE)
        (where / "distcc").mkdir()
        run_env = proof.proof_env(env, target, str(where / "distcc"), leave_out)
        seconds, returncode, stderr = 0.0, None, ""
        with trio.move_on_after(timeout):
            local = await _compiled(proof.local_argv(target, source, "local.o"), run_env, where)
            if local[0] != 0:
                said = local[1].strip().splitlines() or ["no message"]
                return ProofResult(target, Outcome.LOCAL, said[-1], 0.0, at, wall)
            started = trio.current_time()
            argv = proof.remote_argv(distcc, target, source, "remote.o")
            returncode, stderr = await _compiled(argv, run_env, where)
            seconds = trio.current_time() - started
        outcome, detail = proof.classify(
            returncode, stderr, _read(where / "remote.o"), _read(where / "local.o")
        )
        if returncode is None:
            seconds = timeout
        return ProofResult(target, outcome, detail, seconds, at, wall)


async def _compiled(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> tuple[int, str]:
    """Run `argv` in `cwd`: its exit status (127: it could not start) and stderr."""
    try:
        done = await trio.run_process(
            list(argv),
            env=dict(env),
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    except OSError as error:
        return 127, f"ERROR: cannot run {argv[0]}: {error.strerror or error}"
    return done.returncode, done.stderr.decode("utf-8", errors="replace")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
