"""What the clients' wrappers were told during a benchmark: each one's hosts line for its
`gcc`, read from its daemon's state file every half second (the file the wrapper reads
on each compile), summed up as slots in the line and where localhost stood.

A client whose line offers fewer slots than its build's `-j` leaves jobs waiting in
distcc's one-second lock pause, and the pool idles meanwhile; this shows how often.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field

from p2pcc import statefile
from tests.integration.pool import Daemon
from tests.integration.sampling import PeriodicSampler

PERIOD = 0.5


@dataclass
class LineSamples:
    """One client's samples: slots in its line, and localhost's place (0 = first)."""

    slots: list[int] = field(default_factory=list)
    local_place: list[int] = field(default_factory=list)
    remote_hosts: list[int] = field(default_factory=list)
    #: The remote hosts' addresses in each sample.
    listed: list[frozenset[str]] = field(default_factory=list)


class LineWatch(PeriodicSampler):
    """Samples each client's gcc line while the `with` block runs."""

    def __init__(self, daemons: dict[str, Daemon], compiler: str = "gcc") -> None:
        super().__init__(PERIOD)
        self._daemons = daemons
        self._names = {daemon.ws.address: name for name, daemon in daemons.items()}
        self._compiler = compiler
        self.samples = {name: LineSamples() for name in daemons}

    def sample(self) -> None:
        for name, daemon in self._daemons.items():
            line = self._line(daemon)
            if line is None:
                continue
            words = line.split()
            samples = self.samples[name]
            samples.slots.append(sum(int(word.rsplit("/", 1)[1].split(",")[0]) for word in words))
            samples.local_place.append(
                next((i for i, w in enumerate(words) if w.startswith("localhost")), -1)
            )
            remote = [w for w in words if not w.startswith("localhost")]
            samples.remote_hosts.append(len(remote))
            samples.listed.append(frozenset(_address(word) for word in remote))

    def _line(self, daemon: Daemon) -> str | None:
        try:
            text = (daemon.runtime_dir / statefile.FILE_NAME).read_text()
        except OSError:
            return None
        parsed = statefile.parse(text)
        if parsed is None:
            return None
        _, hosts, compilers, _ = parsed
        for path, (_, fingerprint, _) in compilers.items():
            if os.path.basename(path) == self._compiler and fingerprint in hosts:
                return hosts[fingerprint][1]
        return None

    def summary(self, jobs: int) -> str:
        """Per client: slots in the line (min, mean), the share of samples with fewer
        slots than `jobs`, remote hosts listed (mean) and localhost first how often."""
        parts = []
        for name, s in self.samples.items():
            if not s.slots:
                parts.append(f"{name} no samples")
                continue
            short = sum(1 for n in s.slots if n < jobs) / len(s.slots)
            first = sum(1 for p in s.local_place if p == 0) / len(s.local_place)
            parts.append(
                f"{name} slots min {min(s.slots)} mean {statistics.mean(s.slots):.1f}"
                f" (< -j{jobs} {short:.0%}), remote hosts {statistics.mean(s.remote_hosts):.1f},"
                f" localhost first {first:.0%}{self._absences(s)}"
            )
        return ";  ".join(parts)

    def _absences(self, samples: LineSamples) -> str:
        """The remote hosts missing from some samples of a line, with how often."""
        seen = frozenset().union(*samples.listed)
        absent = {a: sum(1 for listed in samples.listed if a not in listed) for a in seen}
        told = [
            f"{self._names.get(a, a)} {n / len(samples.listed):.0%}"
            for a, n in sorted(absent.items())
            if n
        ]
        return f", absent: {' '.join(told)}" if told else ""


def _address(word: str) -> str:
    """The address of a remote host of a line (`10.0.0.2:3632/1`, `[fd00::2]:3632/1,lzo`)."""
    host = word.split("/", 1)[0].rsplit(":", 1)[0]
    return host.strip("[]")
