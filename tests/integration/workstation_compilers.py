"""Giving one test-bed workstation other compilers under the usual names.

Each bed workstation has a mount namespace of its own, so an overlay mounted on
`/usr/bin` there changes what `gcc` runs for every process started in it afterwards
(the daemon, its distccd and the compilers distccd runs) and for nothing else.  The
overlay's top layer is a directory of symlinks (`gcc -> x86_64-linux-gnu-gcc-11`) above
the real `/usr/bin`; without an upper layer the overlay is read-only, so nothing done
in the workstation can reach the machine's own `/usr/bin`.  The bed removes the mount
namespace, and the overlay with it, when it closes.

The same mechanism gives each workstation an idle `/proc/loadavg` of its own
(`pretend_idle`): bed workstations share one kernel, hence one load average.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.integration.netbed import Workstation

GCC11 = "x86_64-linux-gnu-gcc-11"
GXX11 = "x86_64-linux-gnu-g++-11"

#: The names that run Debian's default compiler (gcc-12 on bookworm).
DEFAULT_C_NAMES = ("gcc", "cc", "x86_64-linux-gnu-gcc")
DEFAULT_CXX_NAMES = ("g++", "c++", "x86_64-linux-gnu-g++")
#: gcc-12's own names, versioned and target-prefixed.
GCC12_C_NAMES = ("gcc-12", "x86_64-linux-gnu-gcc-12")
GCC12_CXX_NAMES = ("g++-12", "x86_64-linux-gnu-g++-12")


def gcc11_under(c_names: Iterable[str], cxx_names: Iterable[str]) -> dict[str, str]:
    """Symlinks that make each C name run gcc-11 and each C++ name g++-11."""
    return {**dict.fromkeys(c_names, GCC11), **dict.fromkeys(cxx_names, GXX11)}


#: `mixed`: the default names run gcc-11, gcc-12 keeps its versioned names.
MIXED = gcc11_under(DEFAULT_C_NAMES, DEFAULT_CXX_NAMES)
#: `pure11`: every gcc name runs gcc-11, `x86_64-linux-gnu-gcc-12` included, as after a
#: partial upgrade that left a lying name behind.
PURE11 = gcc11_under(DEFAULT_C_NAMES + GCC12_C_NAMES, DEFAULT_CXX_NAMES + GCC12_CXX_NAMES)


def shadow_usr_bin(ws: Workstation, links: Mapping[str, str], layer: Path) -> None:
    """Make each name in `links` run its target inside `ws` only: an overlay on
    `/usr/bin` whose top layer, `layer` (created here), holds the symlinks."""
    layer.mkdir(parents=True)
    layer.chmod(0o755)  # distccd runs the compilers as its own user
    for name, target in links.items():
        (layer / name).symlink_to(target)
    ws.run(
        [
            "mount",
            "-t",
            "overlay",
            f"p2pcc-test-{ws.name}",
            "-o",
            f"lowerdir={layer}:/usr/bin",
            "/usr/bin",
        ]
    )


def versions(ws: Workstation, names: Iterable[str]) -> dict[str, str]:
    """`NAME -dumpfullversion` for each name, as run inside the workstation."""
    return {name: ws.run([name, "-dumpfullversion"], timeout=30).stdout.strip() for name in names}


#: What an idle machine's `/proc/loadavg` says.
IDLE_LOADAVG = "0.00 0.00 0.00 1/100 1\n"


def pretend_idle(ws: Workstation, scratch: Path) -> None:
    """Show the workstation's daemon an idle `/proc/loadavg` (a file made in `scratch`).

    Bed workstations share one kernel, so every build in a test loads "all of them" at
    once and each daemon would offer 0 slots for a minute afterwards; real workstations
    each have their own load.  The daemon reads the file, so a bind mount in the
    workstation's mount namespace is enough."""
    fake = scratch / f"loadavg-{ws.name}"
    fake.write_text(IDLE_LOADAVG)
    fake.chmod(0o644)
    ws.run(["mount", "--bind", str(fake), "/proc/loadavg"])
