"""`p2pcc doctor --peers`: prove every peer that offers one of this machine's compilers
now, from this shell, exactly as the daemon does (`p2pcc.daemon.proof_run`), one finding
each: ok with the turnaround, or what failed and what to do (docs/doctor.md).

The daemon names the targets (its status document's `proofs`: the peers and the host
specs its wrapper would use); each field is checked before it reaches distcc's argv or
DISTCC_HOSTS.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import trio

from p2pcc.cli.doctor_checks import Finding, fail, ok, warn
from p2pcc.cli.proof_report import text
from p2pcc.core.proof import ADVICE, Outcome, ProofResult, ProofTarget
from p2pcc.daemon.proof_run import run_proof
from p2pcc.wrapper.lookup import is_link_dir, path_dirs

#: A host spec as `core.hosts.host_spec` renders it: all a proof puts in DISTCC_HOSTS.
_HOST = re.compile(r"(?:[0-9.]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}/[0-9]+(?:,lzo)?")
_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")


def prove_peers(status: Mapping[str, Any], distcc: str, env: Mapping[str, str]) -> list[Finding]:
    """Prove every target the daemon's `status` lists, one at a time; a finding each."""
    targets = proof_targets_of(status)
    if not targets:
        return [
            warn(
                "proof",
                "no peer offers one of this machine's compilers",
                "wait for peers (`p2pcc status`), or see `p2pcc doctor` on why none match",
            )
        ]
    leave_out = [entry for entry in path_dirs(env.get("PATH")) if is_link_dir(entry)]

    async def prove_all() -> list[ProofResult]:
        return [
            await run_proof(target, distcc=distcc, env=env, leave_out=leave_out)
            for target in targets
        ]

    return [proof_finding(result) for result in trio.run(prove_all)]


def proof_finding(result: ProofResult) -> Finding:
    """One proof as a finding: ok with the turnaround; a different object or our own
    compiler failing fails; a peer that would not compile it warns (builds still get
    correct objects: distcc compiles those jobs here)."""
    target = result.target
    check = f"proof {target.name} {target.compiler}"
    if result.outcome is Outcome.OK:
        return ok(check, f"same object as here, {result.seconds * 1000:.0f} ms via {target.host}")
    said = f"{result.outcome.value} via {target.host}"
    said += f" ({result.detail})" if result.detail else ""
    if result.outcome in (Outcome.DIFFERENT, Outcome.LOCAL):
        return fail(check, said, ADVICE[result.outcome])
    return warn(check, said, ADVICE[result.outcome])


def proof_targets_of(status: Mapping[str, Any]) -> list[ProofTarget]:
    """The targets in the status document, those whose fields are well-formed."""
    targets = []
    for entry in status.get("proofs") or []:
        if not isinstance(entry, Mapping):
            continue
        node_id, name, compiler, host, fingerprint, language = (
            entry.get(key)
            for key in ("node_id", "name", "compiler", "host", "fingerprint", "language")
        )
        if not (
            isinstance(node_id, str)
            and isinstance(compiler, str)
            and isinstance(host, str)
            and isinstance(fingerprint, str)
            and isinstance(language, str)
            and _HEX.fullmatch(node_id)
            and _NAME.fullmatch(compiler)
            and _HOST.fullmatch(host)
        ):
            continue
        node = bytes.fromhex(node_id)
        targets.append(
            ProofTarget(node, text(name), 0, fingerprint, language, compiler, host, True)
        )
    return targets
