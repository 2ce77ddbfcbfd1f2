"""A fake gcc for probe and cache tests: a shell script that answers like gcc, counting runs.

Shared by the compiler tests (`from tests.compilers.fake_compiler import ...`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FAKE_GCC = """#!/bin/sh
echo "$1" >> {counter}
case "$1" in
  --version) printf 'gcc (Fake) 12.2.0\\nCopyright (C) 2022 Free Software Foundation, Inc.\\n'
             printf 'This is free software; see the source for copying conditions.\\n' ;;
  -dumpmachine) echo x86_64-linux-gnu ;;
  -dumpfullversion) echo 12.2.0 ;;
  -print-prog-name=cc1) echo {cc1} ;;
  -print-prog-name=as) echo {assembler} ;;
  -print-prog-name=*) echo "${{1#-print-prog-name=}}" ;;
  *) exit 1 ;;
esac
"""


@dataclass
class FakeCompiler:
    """A fake gcc in `path` whose runs are logged, one line each, in `counter`."""

    path: Path
    counter: Path
    cc1: Path
    assembler: Path
    env: dict[str, str]

    def runs(self) -> int:
        """How many times the script has been executed so far."""
        return len(self.counter.read_text().splitlines()) if self.counter.exists() else 0

    def append(self, extra: str) -> None:
        """Give the script new contents (a new size and mtime, same path and inode)."""
        with self.path.open("a") as script:
            script.write(extra)


def make_fake_gcc(root: Path) -> FakeCompiler:
    """A fake gcc in root/bin with its cc1 and as in root/libexec and a cache in root/cache."""
    bindir = root / "bin"
    libexec = root / "libexec"
    bindir.mkdir()
    libexec.mkdir()
    cc1 = libexec / "cc1"
    assembler = libexec / "as"
    cc1.write_text("fake cc1\n")
    assembler.write_text("fake as\n")
    counter = root / "runs"
    script = bindir / "gcc"
    script.write_text(FAKE_GCC.format(counter=counter, cc1=cc1, assembler=assembler))
    script.chmod(0o755)
    env = {"PATH": str(bindir), "P2PCC_CACHE_DIR": str(root / "cache")}
    return FakeCompiler(script, counter, cc1, assembler, env)
