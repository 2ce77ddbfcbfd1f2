"""Proving a peer by a real compile: the tiny source, how to send it, what came back.

An identical fingerprint promises identical code, but it hashes only the binaries; a
specs file, an environment variable or a wrapper in distccd's path can still make a
peer's compiler emit other code.  So a peer that offers one of our compilers is sent a
tiny compile through distcc exactly as a build would send it (`distcc <remote name>`,
`DISTCC_HOSTS` holding only that peer's host spec as the wrapper renders it: address,
port, `,lzo`), and the object is compared with the one our own compiler makes of the
same file.  Rules:

- A local fallback must never pass for the peer's object: `DISTCC_FALLBACK=0` turns a
  failed connection into a failure, `DISTCC_SKIP_LOCAL_RETRY=1` keeps distcc from
  compiling here again after the peer's compiler failed.
- Every proof gets a `DISTCC_DIR` of its own, made just for it: a failure benches the
  peer only in that directory (distcc's 60 s backoff), never for the builds here, and
  the backoff period is left alone (FACTS: a period of 0 makes distcc retry a dead host
  without end).
- No `-g`: debug info names the peer's temporary directory, code does not (FACTS), so
  whole objects are compared byte for byte.
- Only a different object says the peer's code differs; a refusal, a timeout or an
  unreachable peer says nothing of its code (and liveness already handles dead peers).

Nothing here runs a process or reads a clock (`p2pcc.daemon.proof_run` does).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from p2pcc.core import limits
from p2pcc.core.hosts import host_spec
from p2pcc.core.local_compilers import LocalCompiler
from p2pcc.core.model import NodeState
from p2pcc.core.peers import Liveness, Peer
from p2pcc.core.ranking import dial_address

#: Valid C and C++ alike; integer, floating-point and string code that a different
#: compiler, optimisation level or code-generation option compiles differently.
SOURCE = """\
/* p2pcc proof: compiled here and on a peer; the objects must be identical. */
static const char greeting[] = "hello from p2pcc";

double p2pcc_proof_poly(double x)
{
    double y = 0.0;
    for (int i = 0; i < 8; ++i)
        y = y * x + 1.0 / (double)(i + 1);
    return y;
}

unsigned p2pcc_proof_mix(unsigned a, unsigned b)
{
    unsigned h = 2166136261u;
    for (unsigned i = 0; i < a % 17u; ++i)
        h = (h ^ (b + i)) * 16777619u;
    return h / 3u + (h << 5);
}

unsigned long p2pcc_proof_text(void)
{
    unsigned long sum = 0;
    for (const char *c = greeting; *c; ++c)
        sum = sum * 31u + (unsigned char)*c;
    return sum;
}
"""

#: Optimised (so code generation options show) and without -g (see the module docstring).
FLAGS = ("-O2",)

#: The most seconds one proof may take, connection and both compiles: distcc gives up
#: connecting after 4 s, and the tiny compile takes a fraction of a second anywhere.
TIMEOUT = 60.0


class Outcome(enum.Enum):
    """What one proof found; only DIFFERENT takes the peer out of the compiler's line."""

    OK = "ok"
    DIFFERENT = "different object"
    REFUSED = "refused"  # nothing listens on the port: distccd stopped
    NO_ANSWER = "no answer"  # connected, then dropped: --allow, a door, the whitelist
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    FAILED = "failed"  # the peer's compiler failed, or distcc did
    LOCAL = "local compile failed"  # our own compiler: says nothing of the peer


#: Why each failure happens and what to do, for people.
ADVICE = {
    Outcome.DIFFERENT: "its compiler emits other code than ours under the same fingerprint "
    "(a specs file, a wrapper in distccd's PATH, a changed library): compare the compiler "
    "set-up on both machines; it gets none of this compiler's jobs until a proof passes",
    Outcome.REFUSED: "nothing accepts connections on its distccd port: is its daemon serving?",
    Outcome.NO_ANSWER: "its distccd dropped the job without an answer: it does not admit "
    "this machine (distccd.allow, its door) or lacks the compiler in /usr/lib/distcc",
    Outcome.UNREACHABLE: "no route to it: check the network between the machines",
    Outcome.TIMEOUT: f"no object within {TIMEOUT:g} s: the peer or the link is overloaded",
    Outcome.FAILED: "the compile failed there: see the message; its distccd log says more",
    Outcome.LOCAL: "this machine's own compiler failed: run `p2pcc doctor` and check it",
}


@dataclass(frozen=True, slots=True)
class ProofTarget:
    """One peer and one of our compilers it offers: what a proof sends, and where."""

    node_id: bytes
    name: str  # the peer's name, for people
    incarnation: int  # a restart of the peer calls for a new proof
    fingerprint: str
    language: str  # "c" or "c++": the source file's extension follows it
    compiler: str  # our remote name: what the wrapper hands distcc
    host: str  # DISTCC_HOSTS: the peer alone, as the wrapper renders it
    ready: bool  # alive and active: it may take a job now

    @property
    def key(self) -> tuple[bytes, str]:
        return (self.node_id, self.fingerprint)


def proof_targets(
    peers: Iterable[Peer], compilers: Sequence[LocalCompiler], lzo: bool
) -> list[ProofTarget]:
    """Every (peer, local compiler) pair the peer offers and distcc could dial, sorted
    by peer name; `lzo` as the ranking policy renders hosts."""
    ours = {c.fingerprint.id: c.fingerprint for c in compilers if c.fingerprint.remote_name}
    targets = []
    for peer in peers:
        status = peer.status
        address = dial_address(status)
        if address is None or not 0 < status.distccd_port <= limits.MAX_PORT:
            continue
        ready = peer.liveness is Liveness.ALIVE and status.state is NodeState.ACTIVE
        host = host_spec(address, status.distccd_port, 1, lzo)
        for offer in status.compilers:
            fingerprint = ours.get(offer.fingerprint)
            if fingerprint is not None:
                targets.append(
                    ProofTarget(
                        peer.node_id,
                        status.name,
                        peer.order[0],
                        fingerprint.id,
                        fingerprint.language,
                        fingerprint.remote_name,
                        host,
                        ready,
                    )
                )
    return sorted(targets, key=lambda t: (t.name, t.node_id, t.compiler))


def source_name(language: str) -> str:
    """The proof's file name: `.cc` for C++ (distcc and the driver go by extension)."""
    return "p2pcc-proof.cc" if language == "c++" else "p2pcc-proof.c"


def local_argv(target: ProofTarget, source: str, output: str) -> list[str]:
    """Our own compile of the proof, by the name the wrapper would send."""
    return [target.compiler, *FLAGS, "-c", source, "-o", output]


def remote_argv(distcc: str, target: ProofTarget, source: str, output: str) -> list[str]:
    """The peer's compile of the proof, as the wrapper execs it."""
    return [distcc, *local_argv(target, source, output)]


def proof_env(
    env: Mapping[str, str], target: ProofTarget, distcc_dir: str, leave_out: Iterable[str]
) -> dict[str, str]:
    """`env` for distcc: no distcc settings of the caller's, `leave_out` (our compiler
    links) taken out of PATH so distcc finds the real compiler, the peer alone in
    DISTCC_HOSTS, and no way to a local fallback."""
    dropped = set(leave_out)
    path = ":".join(e for e in env.get("PATH", "").split(":") if e and e not in dropped)
    kept = {k: v for k, v in env.items() if not k.startswith(("DISTCC_", "_DISTCC", "P2PCC_"))}
    return {
        **kept,
        "PATH": path or "/usr/bin:/bin",
        "LC_ALL": "C",
        "DISTCC_HOSTS": target.host,
        "DISTCC_DIR": distcc_dir,
        "DISTCC_FALLBACK": "0",
        "DISTCC_SKIP_LOCAL_RETRY": "1",
    }


#: distcc's words for each failure, looked for in this order.
_SIGNS = (
    (Outcome.REFUSED, ("connection refused",)),
    (Outcome.UNREACHABLE, ("no route to host", "network is unreachable", "host is unreachable")),
    (Outcome.TIMEOUT, ("timed out", "timeout")),
    (
        Outcome.NO_ANSWER,
        ("server provided no answer", "connection reset", "unexpected eof", "whitelist"),
    ),
)

#: Characters of distcc's message kept in a result.
MAX_DETAIL = 300


def classify(
    returncode: int | None, stderr: str, remote: bytes | None, local: bytes | None
) -> tuple[Outcome, str]:
    """The outcome of a proof and a detail for people, from distcc's exit status
    (None: killed at the timeout), its stderr and the two objects (None: not made)."""
    if local is None:
        return Outcome.LOCAL, ""
    if returncode is None:
        return Outcome.TIMEOUT, f"killed after {TIMEOUT:g} s"
    if returncode == 0 and remote is not None:
        if remote == local:
            return Outcome.OK, ""
        return Outcome.DIFFERENT, f"{len(remote)} bytes against {len(local)} here"
    detail = _last_error(stderr) or f"distcc exited with status {returncode}"
    lowered = stderr.lower()
    for outcome, signs in _SIGNS:
        if any(sign in lowered for sign in signs):
            return outcome, detail
    return Outcome.FAILED, detail


def _last_error(stderr: str) -> str:
    """distcc's most telling line: its first ERROR (the cause), else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR:" in line and "fallbacks are disabled" not in line]
    chosen = errors[0] if errors else (lines[-1] if lines else "")
    text = chosen.partition("ERROR: ")[2] or chosen
    return "".join(c if c.isprintable() else "?" for c in text)[:MAX_DETAIL]


@dataclass(frozen=True, slots=True)
class ProofResult:
    """One proof: where, what came of it, how long distcc took, and when (monotonic
    `at` for the schedule, Unix `wall` for people)."""

    target: ProofTarget
    outcome: Outcome
    detail: str
    seconds: float
    at: float
    wall: float

    def as_document(self) -> dict[str, object]:
        return {
            "outcome": self.outcome.value,
            "detail": self.detail,
            "seconds": self.seconds,
            "at": self.wall,
            "advice": ADVICE.get(self.outcome, ""),
        }
