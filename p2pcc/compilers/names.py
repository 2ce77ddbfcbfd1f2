"""A compiler's names: where a command resolves, the symlinks it goes through, what they mean.

A compiler is found on PATH without p2pcc's own link directories, so a name always means
the real compiler and never our masquerade link in front of it.  The invoked path keeps
its symlinks (`/usr/bin/cc`, not `/usr/bin/x86_64-linux-gnu-gcc-12`): the names a
compiler is reached through tell its language, and they decide which name a peer runs it
by (the remote name, the first candidate that reaches the same binary meaning the same
language).  All of this reads only the file system, never runs a process, so it is
derived afresh on every lookup, cached probe or not.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

from p2pcc.core.errors import FingerprintError
from p2pcc.core.fingerprint import (
    Fingerprint,
    ProbeFacts,
    RemoteNameCheck,
    build_fingerprint,
    language_from_names,
    remote_name_candidates,
    remote_name_problem,
)

#: Linux gives up on a symlink chain after 40 hops (ELOOP); so do we.
MAX_SYMLINK_HOPS = 40


def compiler_search_path(env: Mapping[str, str]) -> str:
    """PATH without p2pcc's link directories: a compiler name means the real compiler,
    never our own masquerade link in front of it."""
    from p2pcc.wrapper.lookup import path_dirs, without_link_dirs

    return os.pathsep.join(without_link_dirs(path_dirs(env.get("PATH", os.defpath))))


def which(name: str, env: Mapping[str, str]) -> str | None:
    """Where `name` is found on the compiler search path, or None."""
    return shutil.which(name, path=compiler_search_path(env))


def resolve_command(command: str, env: Mapping[str, str]) -> str:
    """The absolute invoked path of `command`, symlinks kept; FingerprintError if missing."""
    if "/" in command:
        path = os.path.abspath(command)
        if not os.path.exists(path):
            raise FingerprintError(f"compiler {path} does not exist; check the path")
        return path
    found = which(command, env)
    if found is None:
        raise FingerprintError(
            f"compiler {command!r} was not found on PATH; install it or give its full path"
        )
    return os.path.abspath(found)


def symlink_names(path: str) -> list[str]:
    """The basenames `path` goes through to reach its file: c++, c++, g++, g++-12, ..."""
    names = [os.path.basename(path)]
    current = path
    for _ in range(MAX_SYMLINK_HOPS):
        try:
            target = os.readlink(current)
        except OSError:  # not a symlink (any more): the chain ends here
            break
        current = os.path.join(os.path.dirname(current), target)
        names.append(os.path.basename(target))
    return names


def derive(facts: ProbeFacts, invoked: str, env: Mapping[str, str]) -> Fingerprint:
    """The fingerprint of `facts` reached through `invoked`: language, remote name, id."""
    real = os.path.realpath(invoked)
    language = language_from_names(symlink_names(invoked))
    checks = check_remote_names(facts, invoked, real, language, env)
    try:
        return build_fingerprint(facts, invoked, real, language, checks)
    except FingerprintError as error:
        raise FingerprintError(f"{invoked}: {error}") from None


def check_remote_names(
    facts: ProbeFacts, invoked: str, real: str, language: str, env: Mapping[str, str]
) -> tuple[RemoteNameCheck, ...]:
    """Candidate remote names checked in order, up to and including the first that fits."""
    names = remote_name_candidates(
        facts.family,
        language,
        facts.triple,
        facts.version,
        real_basename=os.path.basename(real),
        invoked=os.path.basename(invoked),
    )
    checks: list[RemoteNameCheck] = []
    for name in names:
        checks.append(_check_remote_name(name, real, language, env))
        if checks[-1].accepted:
            break
    return tuple(checks)


def _check_remote_name(
    name: str, real: str, language: str, env: Mapping[str, str]
) -> RemoteNameCheck:
    problem = remote_name_problem(name)
    if problem:
        return RemoteNameCheck(name, False, problem)
    rejections: list[str] = []
    locations = [which(name, env), os.path.join(os.path.dirname(real), name)]
    for location in dict.fromkeys(loc for loc in locations if loc and os.path.isfile(loc)):
        if os.path.realpath(location) != real:
            rejections.append(f"{location} is another binary")
        elif language_from_names(symlink_names(location)) != language:
            rejections.append(f"{location} does not mean {language.upper()}")
        else:
            return RemoteNameCheck(name, True, location)
    return RemoteNameCheck(name, False, "; ".join(rejections) or "not found")
