"""Aborting TCP connections of this network namespace through `ss -K` (iproute2's
interface to the kernel's SOCK_DESTROY): distcc connections with a vanished peer
(`vanished.py`), our jobs on a straggler (`daemon/turnaround.py`), and the jobs our
distccd runs for peers when a pause hands them back (`paused.py`).

The process aborting them needs CAP_NET_ADMIN, and the kernel CONFIG_INET_DIAG_DESTROY;
`vanished.cutoff_problem` finds out at start whether both hold.  A distcc client whose
connection is aborted sees "connection aborted" and compiles the file locally at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import trio

from p2pcc.core.job_connections import ConnectionKey

#: Seconds `ss` may take; it answers in milliseconds.
SS_TIMEOUT = 10.0

#: Connections named in one `ss` filter: the expression grows by a dozen words each.
MAX_PER_CALL = 32


@dataclass(frozen=True, slots=True)
class Aborted:
    """What `ss -K` did: how many connections it aborted, and its complaint, if any."""

    connections: int
    complaint: str = ""


async def abort_connections(addresses: Sequence[str], port: int, own_port: int) -> Aborted:
    """Abort this namespace's established TCP connections with `addresses` that go to
    their `port` or come to our `own_port`."""
    calls = [
        f"dst {_host(address)} ( dport = :{port} or sport = :{own_port} )".split()
        for address in addresses
    ]
    return await _abort_each(calls)


async def abort_jobs(connections: Sequence[ConnectionKey]) -> Aborted:
    """Abort exactly `connections` (local address, port, remote address, port, inode),
    in as few `ss` calls as `MAX_PER_CALL` allows."""
    calls = []
    for start in range(0, len(connections), MAX_PER_CALL):
        expression: list[str] = []
        for _, port, remote, remote_port, _ in connections[start : start + MAX_PER_CALL]:
            expression += ["or"] if expression else []
            host = _host(str(remote))
            expression += f"( sport = :{port} and dst {host} and dport = :{remote_port} )".split()
        calls.append(expression)
    return await _abort_each(calls)


async def abort_served(own_port: int) -> Aborted:
    """Abort every established connection our distccd accepted on `own_port`: the jobs
    it runs for peers.  Our own jobs elsewhere go *to* a distccd port, from a port of
    the ephemeral range, so they are not among them."""
    return await _abort_each([f"sport = :{own_port}".split()])


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


async def _abort_each(expressions: Sequence[Sequence[str]]) -> Aborted:
    """One `ss -K` per filter expression; the connections aborted in all, and the
    complaints (the first missing `ss` ends it)."""
    aborted, complaints = 0, []
    for expression in expressions:
        command = ["ss", "-K", "-t", "-n", "-H", "state", "established", *expression]
        try:
            with trio.fail_after(SS_TIMEOUT):
                done = await trio.run_process(
                    command, capture_stdout=True, capture_stderr=True, check=False
                )
        except FileNotFoundError:
            return Aborted(aborted, "ss (iproute2) is not installed")
        except (OSError, trio.TooSlowError) as error:
            complaints.append(f"ss failed: {error}")
            continue
        # ss prints each connection it aborted, and the kernel's refusal on stderr.
        aborted += len(done.stdout.decode(errors="replace").splitlines())
        refusal = done.stderr.decode(errors="replace").strip()
        if refusal or done.returncode != 0:
            complaints.append(refusal or f"ss exited {done.returncode}")
    return Aborted(aborted, "; ".join(dict.fromkeys(complaints)))
