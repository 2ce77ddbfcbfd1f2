"""Which real compiler a link stands for, and what the daemon's state file says about it.

A *link directory* holds the MARKER file `p2pcc install-links` writes next to its links.
Every link directory on PATH is skipped when looking for the real compiler (so links in
several directories, or a directory that is on PATH twice, never find each other), and
taken out of PATH before distcc runs.  A candidate that is our own entry script under
another name, or a one-hop symlink to ccache or distcc (their masquerade directories:
ccache would hand the compile back to the first `gcc` after its own directory, which is
ours, forever), is passed over too.

The compiler is identified by its state-file `compiler` record: by its path when the
daemon probed that very name, else by the stamp of the file it resolves to when every
record with that stamp and language agrees (`gcc-12` and `x86_64-linux-gnu-gcc-12` are
the file the daemon probed as `gcc`; `clang-14` is the file of both `clang` and
`clang++`, told apart by `++`).  A record whose stamp differs means the compiler changed
since the daemon looked: nothing is trusted until it looks again.

Runs on every compiler call, so it uses `posix` (the built-in module `os` wraps, which
the interpreter has loaded before any import; `os` itself costs ~2 ms under `-I -S`) and
`p2pcc.safe_files`'s file-type tests (which import only `posix`, unlike `stat`), and
works on strings, tuples and dicts.
"""

import posix

from p2pcc.safe_files import is_directory, is_regular

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

MARKER = ".p2pcc-links"
ENTRY_NAME = "p2pcc-wrapper"  # what the links point at: the sh trampoline
PYTHON_ENTRY_NAME = "p2pcc-wrapper.py"  # the Python entry the trampoline hands over to

#: Programs whose masquerade links are passed over when looking for the real compiler.
FOREIGN_MASQUERADES = ("ccache", "distcc")

#: PATH when none is set (as `os.defpath`).
DEFAULT_PATH = "/bin:/usr/bin"


def path_dirs(path_value: str | None) -> list[str]:
    """PATH's entries in order, as written ("" is the current directory, as for a shell)."""
    return (DEFAULT_PATH if path_value is None else path_value).split(":")


def join(directory: str, name: str) -> str:
    """`name` in the PATH entry `directory` ("" is the current directory), spelled as
    `os.path.join` (and so `shutil.which`, which found the daemon's paths) spells it."""
    directory = directory or "."
    return directory + name if directory.endswith("/") else f"{directory}/{name}"


def exists(path: str) -> bool:
    """Whether `path` exists (symlinks followed)."""
    try:
        posix.stat(path)
    except OSError:
        return False
    return True


def is_link_dir(directory: str) -> bool:
    """Whether `directory` holds p2pcc links (has the marker file)."""
    return exists(join(directory, MARKER))


def without_link_dirs(entries: list[str]) -> list[str]:
    """PATH entries with every p2pcc link directory left out."""
    return [entry for entry in entries if not is_link_dir(entry)]


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of what `path` resolves to, or None when it does not exist."""
    try:
        status = posix.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def find_real(
    name: str, entries: list[str], own: tuple[int, int] | None = None
) -> tuple[str, posix.stat_result] | None:
    """The first executable `name` on PATH `entries` that is not ours, with its status."""
    for entry in entries:
        candidate = join(entry, name)
        try:
            status = posix.stat(candidate)
        except OSError:
            continue
        if not is_regular(status.st_mode) or not status.st_mode & 0o111:
            continue
        if (status.st_dev, status.st_ino) == own or is_link_dir(entry):
            continue
        if is_foreign_masquerade(candidate):
            continue
        return candidate, status
    return None


def is_foreign_masquerade(path: str) -> bool:
    """Whether `path` is a symlink to ccache or distcc (one of their masquerade links)."""
    try:
        target = posix.readlink(path)
    except OSError:
        return False  # not a symlink: the common case costs one failed readlink
    return target.rpartition("/")[2] in FOREIGN_MASQUERADES


def identify(
    path: str,
    status: posix.stat_result,
    name: str,
    compilers: dict[str, tuple[str, str, str]],
) -> tuple[str, str] | None:
    """(fingerprint, remote name) of the compiler at `path` from the state file's
    `compiler` records (path -> (stamp, fingerprint, remote name)), or None."""
    from p2pcc.statefile import stamp_of  # loaded already: the records came from it

    stamp = stamp_of(status)
    record = compilers.get(path)
    if record is not None:
        return (record[1], record[2]) if record[0] == stamp else None
    cplusplus = "++" in name
    matches = sorted(
        (fingerprint, remote)
        for (other_stamp, fingerprint, remote) in compilers.values()
        if other_stamp == stamp and ("++" in remote) == cplusplus
    )
    if not matches or any(fingerprint != matches[0][0] for fingerprint, _ in matches):
        return None
    return matches[0]


def identify_cached(path: str, cache_file: str) -> tuple[str, str] | None:
    """(fingerprint, remote name) from the per-user fingerprint cache, or None."""
    from p2pcc.compilers.cache import lookup_cached  # rarely needed: only then paid for

    hit = lookup_cached(path, cache_file)
    return None if hit is None else (hit.fingerprint, hit.remote_name)


def remote_hosts(line: str) -> list[str]:
    """The hosts of a DISTCC_HOSTS line that are not this machine (options left out)."""
    hosts = []
    for word in line.split():
        if word.startswith("--"):
            continue
        host = word.split("/", 1)[0].split(",", 1)[0]
        if host != "localhost":
            hosts.append(word)
    return hosts


def is_dir(path: str) -> bool:
    """Whether `path` is a directory (symlinks followed)."""
    try:
        return is_directory(posix.stat(path).st_mode)
    except OSError:
        return False


def make_dirs(directory: str) -> None:
    """`os.makedirs(directory, exist_ok=True)` with `posix` alone."""
    try:
        posix.mkdir(directory, 0o777)
    except FileExistsError:
        if not is_dir(directory):
            raise
    except FileNotFoundError:
        parent = directory.rstrip("/").rpartition("/")[0]
        if not parent or parent == directory:
            raise
        make_dirs(parent)
        make_dirs(directory)


def ensure_distcc_dir(env: "Mapping[str, str]") -> str:
    """Create DISTCC_DIR (default ~/.distcc) if missing; "" or why it cannot be."""
    directory = env.get("DISTCC_DIR")
    if not directory:
        home = env.get("HOME")
        if not home:
            return "neither DISTCC_DIR nor HOME is set, so distcc has no state directory"
        directory = join(home, ".distcc")
    try:
        make_dirs(directory)
    except OSError as error:
        return f"cannot create DISTCC_DIR {directory}: {error.strerror}"
    return ""
