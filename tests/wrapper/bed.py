"""A wrapper test bed in a temporary directory: links, stand-in programs, a state file.

`WrapperBed` installs real links (through `p2pcc install-links`) whose settings point at
the bed's runtime directory and at a stand-in `distcc`, and puts a stand-in compiler
(`realbin/gcc`, a shell script that records its argv and environment, then exits with
`$FAKE_EXIT`) after the links on PATH.  Every run is a fresh interpreter started through
a link, exactly as make would start it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from p2pcc import cli, statefile
from p2pcc.safe_files import replace_file
from p2pcc.statefile import stamp_of

FINGERPRINT = "0123456789abcdef"
REMOTE_NAME = "x-fake-gcc-12"

#: Records how it was run ($0 and arguments NUL-separated, then the environment).
RECORDER = """#!/bin/sh
printf '%s\\0' "$0" "$@" > "${FAKE_RECORD:?}.argv"
env -0 > "$FAKE_RECORD.env"
exit "${FAKE_EXIT:-0}"
"""


@dataclass
class Run:
    """One finished run through a link, and what the stand-ins recorded."""

    returncode: int
    stderr: str
    argv: list[str] | None  # None: no stand-in ran
    env: dict[str, str] | None


class WrapperBed:
    """Links in `root/links`, a stand-in gcc in `root/realbin`, a stand-in distcc."""

    def __init__(self, root: Path, *, distcc: bool = True) -> None:
        self.root = root
        self.links = root / "links"
        self.realbin = root / "realbin"
        self.runtime = root / "run"
        self.record = root / "record"
        for directory in (self.realbin, self.runtime, root / "xdg"):
            directory.mkdir(mode=0o700)
        self.gcc = write_script(self.realbin / "gcc", RECORDER)
        (self.realbin / REMOTE_NAME).symlink_to("gcc")
        self.distcc = root / "distcc-bin" / "distcc"
        if distcc:
            self.distcc.parent.mkdir()
            write_script(self.distcc, RECORDER)
        self.config = root / "p2pcc.toml"
        self.config.write_text(
            f'runtime_dir = "{self.runtime}"\n[wrapper]\ndistcc = "{self.distcc}"\n'
        )
        self.path = f"{self.links}:{self.realbin}:/usr/bin:/bin"

    def install(self) -> None:
        """`p2pcc install-links` into `links`, with PATH holding the stand-in gcc."""
        saved = os.environ.get("PATH", "")
        os.environ["PATH"] = f"{self.realbin}:/usr/bin:/bin"
        try:
            status = cli.main(["install-links", str(self.links), "--config", str(self.config)])
        finally:
            os.environ["PATH"] = saved
        assert status == 0

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment for a run: PATH, HOME, private XDG_RUNTIME_DIR, recorder."""
        return {
            "PATH": self.path,
            "HOME": str(self.root),
            "XDG_RUNTIME_DIR": str(self.root / "xdg"),
            "FAKE_RECORD": str(self.record),
            "LC_ALL": "C",
            **extra,
        }

    def write_state(
        self,
        hosts: str = "10.9.8.7:3632/4 localhost/2",
        *,
        age: float = 0.0,
        compilers: Mapping[str, tuple[str, str, str]] | None = None,
        natives: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None,
    ) -> None:
        """A state file in which the stand-in gcc is FINGERPRINT with `hosts`."""
        if compilers is None:
            record = (stamp_of(os.stat(self.gcc)), FINGERPRINT, REMOTE_NAME)
            compilers = {str(self.gcc): record}
        text = statefile.render(
            time.time() - age,
            {FINGERPRINT: (6, hosts)},
            dict(compilers),
            {k: dict(v) for k, v in (natives or {}).items()},
        )
        replace_file(str(self.runtime / statefile.FILE_NAME), text.encode())

    def run(
        self,
        name: str,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        **popen: object,
    ) -> Run:
        """Run `name args…` through the link, as a build tool would (by PATH)."""
        for suffix in (".argv", ".env"):
            Path(f"{self.record}{suffix}").unlink(missing_ok=True)
        done = subprocess.run(
            [name, *args],
            env=dict(env if env is not None else self.env()),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            **popen,  # type: ignore[arg-type]
        )
        return Run(done.returncode, done.stderr, *self.recorded())

    def recorded(self) -> tuple[list[str] | None, dict[str, str] | None]:
        """What the stand-in that ran last recorded, if any."""
        argv_file, env_file = Path(f"{self.record}.argv"), Path(f"{self.record}.env")
        if not argv_file.exists():
            return None, None
        argv = [a.decode() for a in argv_file.read_bytes().split(b"\0")[:-1]]
        pairs = (e.decode().split("=", 1) for e in env_file.read_bytes().split(b"\0")[:-1])
        # The recording shell adds PWD of its own; everything else is what it was given.
        return argv, {key: value for key, value in pairs if key != "PWD"}


def write_script(path: Path, text: str) -> Path:
    """An executable script at `path`."""
    path.write_text(text)
    path.chmod(0o755)
    return path


def warnings_in(stderr: str) -> list[str]:
    """The p2pcc warning lines of a run's stderr."""
    return [line for line in stderr.splitlines() if "shown once per build" in line]
