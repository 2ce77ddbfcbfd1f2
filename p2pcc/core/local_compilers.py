"""This machine's compilers as the node knows them, and what peers and the wrapper are
told of them.

Peers hear an offer per compiler not withheld (at most MAX_COMPILERS); the wrapper's
state file gets every name's path and file stamp (so a compiler replaced since the
probe is noticed per call) and the checked `-march=native` expansions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from p2pcc.core import limits
from p2pcc.core.fingerprint import Fingerprint
from p2pcc.core.model import CompilerOffer


@dataclass(frozen=True, slots=True)
class LocalCompiler:
    """A compiler of this machine: its fingerprint, the names it answers to with each
    name's path and file stamp at probe time, whether peers are offered it (`withheld`
    says why not), and its checked `-march=native` expansions (p2pcc.wrapper.native)."""

    fingerprint: Fingerprint
    names: tuple[str, ...]
    commands: tuple[tuple[str, str], ...] = ()  # (path as found on PATH, stamp)
    withheld: str = ""
    native: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (key, explicit flags)


def offers_of(compilers: Sequence[LocalCompiler]) -> tuple[CompilerOffer, ...]:
    """What peers are offered: every compiler not withheld, at most MAX_COMPILERS."""
    offers = [c.fingerprint.to_offer() for c in compilers if not c.withheld]
    return tuple(offers[: limits.MAX_COMPILERS])


def compiler_records(compilers: Sequence[LocalCompiler]) -> dict[str, tuple[str, str, str]]:
    """For the state file: path -> (stamp, fingerprint, remote name) of every name."""
    return {
        path: (stamp, compiler.fingerprint.id, compiler.fingerprint.remote_name)
        for compiler in compilers
        for path, stamp in compiler.commands
    }


def native_records(compilers: Sequence[LocalCompiler]) -> dict[str, dict[str, tuple[str, ...]]]:
    """For the state file: fingerprint -> native-flags key -> explicit flags."""
    return {c.fingerprint.id: dict(c.native) for c in compilers if c.native}
