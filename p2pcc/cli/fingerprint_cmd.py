"""`p2pcc fingerprint [COMPILER...]`: show which exact compiler each command runs.

Each compiler is looked up (and probed if the cache is stale) on its own: a failure is
one line on stderr and the others are still shown; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from p2pcc.compilers.probe import default_compilers, lookup
from p2pcc.config.schema import DEFAULT_COMPILERS
from p2pcc.core.errors import FingerprintError
from p2pcc.core.fingerprint import Fingerprint


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `fingerprint` command."""
    parser = sub.add_parser(
        "fingerprint",
        help="show the fingerprint of local compilers",
        description=(
            "Probe compilers and show the fingerprint p2pcc matches peers on: the exact "
            "binaries, target and version, plus the names peers use to reach them."
        ),
    )
    parser.add_argument(
        "compilers",
        nargs="*",
        metavar="COMPILER",
        help=f"a name on PATH or a path (default: those of {' '.join(DEFAULT_COMPILERS)} "
        "found on PATH)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    parser.add_argument(
        "--no-cache", action="store_true", help="probe afresh; neither read nor update the cache"
    )
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Show the fingerprint of each requested compiler; 1 if any could not be probed."""
    env = os.environ
    names: list[str] = args.compilers or default_compilers(env)
    if not names:
        raise FingerprintError(
            f"none of {', '.join(DEFAULT_COMPILERS)} is on PATH; "
            "name a compiler: p2pcc fingerprint /path/to/gcc"
        )
    found: list[tuple[str, Fingerprint]] = []
    failed = False
    for name in names:
        try:
            found.append((name, lookup(name, env, use_cache=not args.no_cache)))
        except FingerprintError as error:
            print(f"p2pcc: {error}", file=sys.stderr)
            failed = True
    if args.json:
        print(json.dumps([as_json(name, fingerprint) for name, fingerprint in found], indent=2))
    elif found:
        print("\n\n".join(as_text(name, fingerprint) for name, fingerprint in found))
    return 1 if failed else 0


def as_json(name: str, fingerprint: Fingerprint) -> dict[str, Any]:
    """The JSON object of one compiler (fields documented in docs/fingerprints.md)."""
    return {
        "name": name,
        "id": fingerprint.id,
        "family": fingerprint.family,
        "language": fingerprint.language,
        "version": fingerprint.version,
        "major": fingerprint.major,
        "triple": fingerprint.triple,
        "loose_key": fingerprint.loose_key,
        "remote_name": fingerprint.remote_name,
        "command": fingerprint.command,
        "real_path": fingerprint.real_path,
        "binaries": [
            {"role": binary.role, "path": binary.path, "sha256": binary.sha256}
            for binary in fingerprint.binaries
        ],
        "remote_name_checks": [
            {"name": check.name, "accepted": check.accepted, "detail": check.detail}
            for check in fingerprint.remote_name_checks
        ],
    }


def as_text(name: str, fingerprint: Fingerprint) -> str:
    """A few aligned lines describing one compiler for a person."""
    lines = [
        f"{name}: {fingerprint.id}",
        f"  family       {fingerprint.family}",
        f"  language     {fingerprint.language}",
        f"  version      {fingerprint.version}",
        f"  triple       {fingerprint.triple}",
        f"  loose key    {fingerprint.loose_key}",
        f"  remote name  {fingerprint.remote_name}",
    ]
    for check in fingerprint.remote_name_checks:
        mark = "✓" if check.accepted else "✗"
        lines.append(f"    {mark} {check.name}: {check.detail}")
    command = fingerprint.command
    if fingerprint.real_path != command:
        command += f" -> {fingerprint.real_path}"
    lines += [f"  command      {command}", "  binaries"]
    width = max(len(binary.role) for binary in fingerprint.binaries)
    lines += [
        f"    {binary.role:<{width}}  {binary.sha256}  {binary.path}"
        for binary in fingerprint.binaries
    ]
    return "\n".join(lines)
