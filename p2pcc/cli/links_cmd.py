"""`p2pcc install-links [DIR] [--remove] [--python PATH]`: the compiler links.

Creates (or refreshes) a symlink for every compiler name on PATH in DIR, all pointing at
the trampoline written there (with the Python entry it hands compiles to), and prints
the PATH line that puts DIR first.  `--remove` removes our links, both entry scripts and
the marker, and nothing else (docs/wrapper.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from p2pcc.cli.link_install import (
    check_interpreter,
    check_usable,
    compiler_names,
    default_link_dir,
    install,
    path_line,
    path_problem,
    remove,
    wrapper_settings,
)
from p2pcc.config import load_config
from p2pcc.core.errors import P2pccError
from p2pcc.wrapper.lookup import ENTRY_NAME


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `install-links` command."""
    parser = sub.add_parser(
        "install-links",
        help="create the compiler links (gcc, cc, g++ …) that send compiles to peers",
        description=(
            "Link every compiler found on PATH (cc, gcc, g++, c++, clang, clang++, versioned "
            "and target-prefixed names) to the p2pcc wrapper in DIR, and print the line "
            "that puts DIR first on PATH.  Re-running refreshes the links and the "
            "settings baked into them; nothing that is not ours is replaced."
        ),
    )
    parser.add_argument(
        "dir",
        nargs="?",
        metavar="DIR",
        help="the link directory (default: /usr/local/lib/p2pcc/bin for root, else "
        "~/.local/share/p2pcc/bin)",
    )
    parser.add_argument(
        "--remove", action="store_true", help="remove the links and the wrapper from DIR"
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        help="the interpreter the links run (default: the one running this command); "
        "a distribution's python3 often starts faster than a pyenv build",
    )
    parser.add_argument("--config", metavar="FILE", help="read this file instead of searching")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Install or remove the links; 1 (via P2pccError) when DIR is not usable."""
    link_dir = Path(os.path.abspath(args.dir)) if args.dir else default_link_dir()
    if args.remove:
        removed, left = remove(link_dir)
        print(f"p2pcc: removed {len(removed)} files from {link_dir}")
        if left:
            print(f"p2pcc: left alone (not ours): {' '.join(left)}")
        return 0
    env = os.environ
    config = load_config(args.config, env)
    check_usable(link_dir)
    names = compiler_names(env, link_dir)
    if not names:
        raise P2pccError("no compiler (cc, gcc, g++, clang …) found on PATH: nothing to link")
    settings = wrapper_settings(config, env, link_dir)
    python = check_interpreter(args.python) if args.python else sys.executable
    result = install(link_dir, settings, names, python=python)
    linked = sorted([*result.created, *result.kept])
    print(
        f"p2pcc: {len(linked)} compiler links in {link_dir} "
        f"({len(result.created)} new, {len(result.removed)} removed): {' '.join(linked)}"
    )
    print(
        f"p2pcc: the links run the trampoline {link_dir / ENTRY_NAME} (/bin/sh), which "
        f"runs every call that stays local itself and hands compiles to {python}"
        + (" (upgraded from the older Python-only layout)" if result.upgraded else "")
    )
    if result.readlink is None:
        print(
            "p2pcc: warning: no readlink program found: a compiler that is a symlink "
            "is left to Python to check, which costs every call an interpreter start"
        )
    for name, why in result.conflicts:
        print(f"p2pcc: warning: {name} not linked: {link_dir / name} is {why}")
    if "/" not in settings.distcc:
        print(f"p2pcc: warning: {settings.distcc} is not installed: compiles stay local")
    problem = path_problem(link_dir, linked, env)
    print(f"p2pcc: {problem}; add this line" if problem else "p2pcc: PATH is set; keep this line")
    print("to your shell's startup file (~/.profile, ~/.bashrc …):")
    print(path_line(link_dir))
    return 0
