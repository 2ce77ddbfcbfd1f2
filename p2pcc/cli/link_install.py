"""`p2pcc install-links`: the link directory, its entry scripts and the compiler links.

The directory holds a marker file (`.p2pcc-links`: the wrapper skips every directory
holding one when it looks for the real compiler), the trampoline `p2pcc-wrapper` (a
`/bin/sh` script: `p2pcc.wrapper.trampoline`), one relative symlink per compiler name
found on PATH pointing at it, and the Python entry `p2pcc-wrapper.py` the trampoline
hands compiles to.  That entry is run as `<python> -I -S` (no `site`: it costs more than
the rest of the wrapper) and a few lines that put the package's directory first on
`sys.path` (the wrapper imports no other module from disk, and the standard library's
directories need not be searched first) and call `p2pcc.wrapper.main.main` with the
`Settings` baked in, so a compiler call never reads the configuration.

Refreshing is idempotent: the marker and both scripts are rewritten atomically (the
Python entry before the trampoline that uses it, so a build running meanwhile sees the
old layout or the new, whole: a directory written by an older p2pcc, whose
`p2pcc-wrapper` is a Python script the links point at, is upgraded in place), links
already ours are kept, links of compilers no longer on PATH are removed, and a name held
by anything that is not our link (a file, a link elsewhere) is never touched, only
reported.  A directory that exists, is not empty and has no marker is refused: it is
somebody else's (think `/usr/bin`), and marking it would hide its compilers; so is one
that someone else may write, who could then replace what every compiler call runs.
"""

from __future__ import annotations

import compileall
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from p2pcc import paths, statefile
from p2pcc.compilers.cache import cache_file
from p2pcc.config.model import Config
from p2pcc.core.errors import P2pccError
from p2pcc.safe_files import replace_file, trusted_by
from p2pcc.wrapper import trampoline
from p2pcc.wrapper.lookup import (
    ENTRY_NAME,
    MARKER,
    PYTHON_ENTRY_NAME,
    find_real,
    is_foreign_masquerade,
    is_link_dir,
    join,
    path_dirs,
)
from p2pcc.wrapper.main import Settings

SYSTEM_LINK_DIR = Path("/usr/local/lib/p2pcc/bin")

#: Where `readlink`, which the trampoline runs to judge a symlink on PATH, is looked
#: for first (then PATH): the system's own, whatever PATH holds at install time.
READLINK_DIRS = ("/usr/bin", "/bin")

#: Compiler names linked: cc, gcc, g++, c++, clang, clang++, each optionally versioned
#: (`gcc-12`, `clang-14`, `gcc-4.9`) and target-prefixed (`x86_64-linux-gnu-gcc-12`,
#: `arm-none-eabi-gcc`).  A prefix has at least two parts, so `c89-gcc` is not one.
COMPILER_NAME = re.compile(
    r"(?:[A-Za-z0-9_]+(?:-[A-Za-z0-9_.]+){1,3}-)?(?:gcc|g\+\+|cc|c\+\+|clang|clang\+\+)"
    r"(?:-[0-9]+(?:\.[0-9]+)*)?"
)

#: The modules a compiler call imports: compiled at install time so the first call of
#: every user does not pay for it (and users who cannot write them never do).
HOT_MODULES = (
    "__init__.py",
    "safe_files.py",
    "statefile.py",
    "wrapper/__init__.py",
    "wrapper/main.py",
    "wrapper/args.py",
    "wrapper/lookup.py",
    "wrapper/warn.py",
    "wrapper/native.py",
    "compilers/__init__.py",
    "compilers/cache.py",
)

_MARKER_TEXT = (
    "This directory holds p2pcc compiler links, made by `p2pcc install-links`.\n"
    "The wrapper skips every directory holding this file when it looks for the real\n"
    "compiler on PATH.  `p2pcc install-links --remove` removes the links and this file.\n"
)


@dataclass
class InstallResult:
    """What `install` did, name by name."""

    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # ours, compiler no longer on PATH
    conflicts: list[tuple[str, str]] = field(default_factory=list)  # (name, why left alone)
    upgraded: bool = False  # the directory had an older p2pcc's Python entry as link target
    readlink: str | None = None  # what the trampoline judges symlinks with (None: hands over)


def default_link_dir() -> Path:
    """/usr/local/lib/p2pcc/bin for root, else `<user data dir>/p2pcc/bin`."""
    if os.geteuid() == 0:
        return SYSTEM_LINK_DIR
    import platformdirs

    return Path(platformdirs.user_data_dir("p2pcc", appauthor=False)) / "bin"


def state_files(config: Config, env: Mapping[str, str]) -> tuple[str, ...]:
    """Where the wrapper looks for the state file, in order.

    The configured runtime directory's; for a user who configured none (and set no
    `P2PCC_RUNTIME_DIR`), then also the system daemon's, /run/p2pcc/state, so the links
    of every user find the daemon that `systemctl` runs.
    """
    first = str(config.runtime_dir / statefile.FILE_NAME)
    system = str(paths.SYSTEM_RUNTIME_DIR / statefile.FILE_NAME)
    defaulted = config.runtime_dir == paths.runtime_dir(
        {k: v for k, v in env.items() if k != "P2PCC_RUNTIME_DIR"}
    )
    if first != system and defaulted and not env.get("P2PCC_RUNTIME_DIR"):
        return (first, system)
    return (first,)


def wrapper_settings(config: Config, env: Mapping[str, str], link_dir: Path) -> Settings:
    """The settings to bake into the entry script of `link_dir`."""
    distcc = config.wrapper.distcc
    if "/" not in distcc:
        found = shutil.which(distcc, path=os.pathsep.join(_search_path(env, link_dir)))
        distcc = found or distcc  # not installed yet: looked up on PATH at each call
    return Settings(
        state_files=state_files(config, env),
        cache_file=cache_file(env),
        link_dir=str(link_dir),
        distcc=distcc,
        state_max_age=config.wrapper.state_max_age,
    )


def _search_path(env: Mapping[str, str], link_dir: Path) -> list[str]:
    """PATH without link directories and without `link_dir`."""
    own = os.path.abspath(link_dir)
    return [
        entry
        for entry in path_dirs(env.get("PATH"))
        if os.path.abspath(entry or ".") != own and not is_link_dir(entry)
    ]


def compiler_names(env: Mapping[str, str], link_dir: Path) -> list[str]:
    """The compiler names on PATH (outside link directories) that run a real program."""
    entries = _search_path(env, link_dir)
    names: set[str] = set()
    for entry in entries:
        try:
            listing = os.listdir(entry or ".")
        except OSError:
            continue
        names.update(name for name in listing if COMPILER_NAME.fullmatch(name))
    return sorted(name for name in names if find_real(name, entries) is not None)


def entry_script(settings: Settings, package_root: str) -> str:
    """The text of `p2pcc-wrapper.py`: the trampoline runs it as `<python> -I -S
    p2pcc-wrapper.py "$0" args…`; it drops its own name, so `main` sees argv[0] as the
    link that was called."""
    return (
        "# The p2pcc compiler wrapper (docs/wrapper.md): the trampoline p2pcc-wrapper next\n"
        "# to this file runs it for calls that may go to a peer.  Written by\n"
        "# `p2pcc install-links`; re-run it after changing the configuration or moving p2pcc.\n"
        "import gc, sys\n"
        "gc.disable()  # a life of a millisecond that ends in exec: nothing to collect\n"
        "del sys.argv[0]\n"
        f"sys.path.insert(0, {package_root!r})\n"
        "from p2pcc.wrapper.main import Settings, main\n"
        "main(Settings(\n"
        + "".join(setting_line(key, getattr(settings, key)) for key in Settings.__slots__)
        + "))\n"
    )


def setting_line(key: str, value: object) -> str:
    """The line of the entry script that bakes in the setting `key`."""
    return f"    {key}={value!r},\n"


def package_root() -> str:
    """The directory that holds the `p2pcc` package (what `sys.path` needs)."""
    import p2pcc

    return str(Path(p2pcc.__file__).resolve().parent.parent)


def install(
    link_dir: Path,
    settings: Settings,
    names: Sequence[str],
    *,
    python: str = sys.executable,
) -> InstallResult:
    """Create or refresh the link directory for `names`, run by the interpreter `python`."""
    result = InstallResult(readlink=find_readlink())
    entry = entry_script(settings, package_root())
    known = known_symlinks(names, path_dirs(os.environ.get("PATH")))
    script = trampoline.script(str(link_dir), python, result.readlink, known)
    _prepare(link_dir)
    result.upgraded = (link_dir / ENTRY_NAME).exists() and not trampoline.is_trampoline(link_dir)
    try:
        replace_file(link_dir / MARKER, _MARKER_TEXT.encode(), mode=0o644)
        replace_file(link_dir / PYTHON_ENTRY_NAME, _encode(entry), mode=0o644)
        replace_file(link_dir / ENTRY_NAME, _encode(script), mode=0o755)
    except OSError as error:
        raise P2pccError(f"cannot write into {link_dir}: {error.strerror}") from None
    _compile_hot_modules(python)
    wanted = set(names)
    for path in sorted(link_dir.iterdir()):
        if path.name not in wanted and _is_our_link(path):
            path.unlink()
            result.removed.append(path.name)
    for name in sorted(wanted):
        _link(link_dir / name, result)
    return result


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def known_symlinks(names: Sequence[str], entries: Sequence[str]) -> dict[str, str]:
    """For the trampoline: each symlink named like a compiler of `names` on PATH
    (outside link directories) that is not a ccache or distcc masquerade, with the file
    it resolves to now."""
    known: dict[str, str] = {}
    for entry in entries:
        if is_link_dir(entry):
            continue
        for name in names:
            path = join(entry, name)
            if os.path.islink(path) and not is_foreign_masquerade(path):
                known[path] = os.path.realpath(path)
    return known


def find_readlink() -> str | None:
    """The `readlink` program the trampoline runs (the system's first), or None."""
    search = (*READLINK_DIRS, *path_dirs(os.environ.get("PATH")))
    found = shutil.which("readlink", path=os.pathsep.join(search))
    return os.path.abspath(found) if found else None


def check_usable(link_dir: Path) -> None:
    """P2pccError unless `link_dir` is missing, empty, or already a link directory."""
    if not link_dir.exists():
        return
    if not link_dir.is_dir():
        raise P2pccError(f"{link_dir} is not a directory")
    if not (link_dir / MARKER).exists() and any(link_dir.iterdir()):
        raise P2pccError(
            f"{link_dir} is not empty and holds no p2pcc links: choose a new or empty "
            "directory (compiler links there would hide its own programs)"
        )


def _prepare(link_dir: Path) -> None:
    """Create `link_dir`, or check that it is ours or empty, and that nobody else may
    write it (they could replace what every compiler call runs)."""
    check_usable(link_dir)
    try:
        link_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        status = link_dir.stat()
    except OSError as error:
        raise P2pccError(f"cannot create {link_dir}: {error.strerror}") from None
    if not trusted_by(status, (0, os.geteuid())):
        raise P2pccError(
            f"{link_dir} may be written by others, who could replace what every compiler "
            f"call runs: `chmod go-w {link_dir}` (and own it), or choose another directory"
        )


def _link(path: Path, result: InstallResult) -> None:
    if _is_our_link(path):
        result.kept.append(path.name)
    elif path.is_symlink():
        result.conflicts.append((path.name, f"a link to {os.readlink(path)}, not ours"))
    elif path.exists():
        result.conflicts.append((path.name, "a file that is not a p2pcc link"))
    else:
        path.symlink_to(ENTRY_NAME)
        result.created.append(path.name)


def _is_our_link(path: Path) -> bool:
    return path.is_symlink() and os.readlink(path) == ENTRY_NAME


def _compile_hot_modules(python: str) -> None:
    """Best effort: a read-only installation compiled its files when it was installed."""
    root = Path(package_root()) / "p2pcc"
    files = [str(root / module) for module in HOT_MODULES]
    if python == sys.executable:
        for file in files:
            compileall.compile_file(file, quiet=2)
        return
    # Another interpreter may be another version, with other .pyc names: let it compile.
    subprocess.run(
        [python, "-I", "-S", "-m", "py_compile", *files],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )


def check_interpreter(python: str) -> str:
    """The absolute path of `python` once it proved to be Python 3.11 or newer."""
    found = shutil.which(python)
    if found is None:
        raise P2pccError(f"interpreter {python} not found")
    path = os.path.abspath(found)
    try:
        done = subprocess.run(
            [path, "-I", "-S", "-c", "import sys; sys.exit(sys.version_info < (3, 11))"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise P2pccError(f"cannot run the interpreter {path}: {error}") from None
    if done.returncode != 0:
        raise P2pccError(f"{path} is not Python 3.11 or newer, which p2pcc needs")
    return path


def remove(link_dir: Path) -> tuple[list[str], list[str]]:
    """Remove our links, the entry script and the marker; (removed, left alone)."""
    if not link_dir.exists():
        return [], []
    if not (link_dir / MARKER).exists():
        raise P2pccError(f"{link_dir} holds no p2pcc links (no {MARKER}): nothing removed")
    removed, left = [], []
    for path in sorted(link_dir.iterdir()):
        if _is_our_link(path) or path.name in (ENTRY_NAME, PYTHON_ENTRY_NAME, MARKER):
            path.unlink()
            removed.append(path.name)
        else:
            left.append(path.name)
    if not left:
        link_dir.rmdir()
    return removed, left


def path_line(link_dir: Path) -> str:
    """The shell line that puts `link_dir` first on PATH."""
    quoted = re.sub(r'([\\"$`])', r"\\\1", str(link_dir))
    return f'export PATH="{quoted}:$PATH"'


def path_problem(link_dir: Path, names: Sequence[str], env: Mapping[str, str]) -> str:
    """Why the current PATH would not use the links ("" when it would)."""
    entries = path_dirs(env.get("PATH"))
    own = os.path.abspath(link_dir)
    positions = [i for i, entry in enumerate(entries) if os.path.abspath(entry or ".") == own]
    if not positions:
        return f"{link_dir} is not on PATH yet"
    for entry in entries[: positions[0]]:
        if is_link_dir(entry):
            continue
        shadowing = [n for n in names if os.access(os.path.join(entry or ".", n), os.X_OK)]
        if shadowing:
            return f"{entry} comes before {link_dir} on PATH and has {', '.join(shadowing[:3])}"
    return ""
