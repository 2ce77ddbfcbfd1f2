"""How `p2pcc status` and `p2pcc doctor` show `gossip.seeds`.

`status` prints the daemon's view (`seeds` in the status document): each seed, the
endpoints it resolved to and why its last lookup failed.  `doctor` looks the names up
itself, as the daemon would (`p2pcc.core.seeds.SeedBook`: the gossip group's family,
the accepted networks, our own addresses left out), so it also works while the daemon
is down, and says which seed does not resolve or lies outside the accepted networks.
Each lookup is bounded by LOOKUP_TIMEOUT and runs in a daemon thread, so a resolver
that hangs delays the doctor by that much, never forever.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from p2pcc.cli.doctor_checks import Finding, ok, warn
from p2pcc.config import Config
from p2pcc.core.addresses import AddressPool
from p2pcc.core.seeds import LOOKUP_TIMEOUT, Seed, SeedBook, SeedState, parse_seed
from p2pcc.netinfo import IPInterface

#: (host, IP version) to that host's addresses of that version; OSError says why not.
Resolve = Callable[[str, int], Sequence[str]]


def seeds_line(document: Mapping[str, Any]) -> str | None:
    """The seeds' line under the status table; None when no seed is configured."""
    seeds = [s for s in document.get("seeds") or [] if isinstance(s, Mapping)]
    if not seeds:
        return None
    return "seeds: " + "; ".join(_seed_text(seed) for seed in seeds)


def _seed_text(seed: Mapping[str, Any]) -> str:
    endpoints = [e for e in seed.get("endpoints") or [] if isinstance(e, list) and len(e) == 2]
    shown = ", ".join(_endpoint(str(a), p) for a, p in endpoints) or "-"
    text = f"{_printable(str(seed.get('seed')))} {shown}"
    if isinstance(seed.get("problem"), str):
        text += f" ({_printable(seed['problem'])})"
    unused = [u.get("address") for u in seed.get("unused") or [] if isinstance(u, Mapping)]
    if unused:
        text += f" (not used: {', '.join(_printable(str(a)) for a in unused)})"
    return text


def system_resolve(host: str, version: int) -> Sequence[str]:
    """getaddrinfo's addresses of IP `version` for `host`."""
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    infos = socket.getaddrinfo(host, None, family, socket.SOCK_DGRAM)
    return [str(info[4][0]) for info in infos]


def look_up_seeds(
    seeds: Sequence[Seed],
    book: SeedBook,
    resolve: Resolve = system_resolve,
    timeout: float = LOOKUP_TIMEOUT,
) -> tuple[SeedState, ...]:
    """Each seed looked up once (names side by side, literals need none) and told to
    `book`; its states."""
    names = [seed for seed in seeds if seed.literal is None]
    answers = _answers(names, resolve, book.version, timeout)
    for seed in seeds:
        answer = (
            [seed.host] if seed.literal else answers.get(seed, f"no answer within {timeout:g} s")
        )
        if isinstance(answer, str):
            book.failed(str(seed), answer)
        else:
            book.resolved(str(seed), answer)
    return book.states()


def _answers(
    names: Sequence[Seed], resolve: Resolve, version: int, timeout: float
) -> dict[Seed, Sequence[str] | str]:
    """What each name's lookup gave (addresses or why none) within `timeout` in all."""
    answers: queue.Queue[tuple[Seed, Sequence[str] | str]] = queue.Queue()
    for seed in names:
        work = (seed, resolve, version, answers)
        threading.Thread(target=_look_up, args=work, daemon=True).start()
    found: dict[Seed, Sequence[str] | str] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(found) < len(names):
            seed, answer = answers.get(timeout=max(0.0, deadline - time.monotonic()))
            found[seed] = answer
    except queue.Empty:
        pass
    return found


def _look_up(
    seed: Seed,
    resolve: Resolve,
    version: int,
    answers: queue.Queue[tuple[Seed, Sequence[str] | str]],
) -> None:
    try:
        answers.put((seed, list(resolve(seed.host, version))))
    except OSError as error:
        answers.put((seed, error.strerror or str(error)))


def check_seeds(states: Sequence[SeedState], pool: AddressPool) -> list[Finding]:
    """One finding per seed: where it is reached, or why it is not (with the fix)."""
    return [_seed_finding(state, pool) for state in states]


def _seed_finding(state: SeedState, pool: AddressPool) -> Finding:
    name = f"seed {state.seed}"
    if state.problem is not None:
        return warn(
            "seeds",
            f"{name} does not resolve to an IPv{pool.version} address: {state.problem}",
            f"check the name (`getent ahosts {parse_seed(state.seed).host}`) or list the seed "
            "by its address",
        )
    outside = [address for address, why in state.unused if why == "address-outside"]
    if outside:
        networks = ", ".join(map(str, pool.networks))
        return warn(
            "seeds",
            f"{name} resolves to {', '.join(outside)}, outside the networks the pool accepts "
            f"({networks})",
            "add the seed's network to gossip.networks",
        )
    if state.unused:
        unused = ", ".join(f"{a} ({why})" for a, why in state.unused)
        return warn("seeds", f"{name} resolves to unusable {unused}", "correct its DNS record")
    if not state.endpoints:
        return ok("seeds", f"{name} is this machine")
    shown = ", ".join(_endpoint(a, p) for a, p in state.endpoints)
    return ok("seeds", f"{name} is reached at {shown}")


def _endpoint(address: str, port: object) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _printable(text: str) -> str:
    return text if text.isprintable() else text.encode("unicode_escape").decode()


def seed_findings(
    config: Config, interface: Sequence[IPInterface], resolve: Resolve = system_resolve
) -> list[Finding]:
    """`gossip.seeds` looked up and judged as the daemon would, with the gossip
    interface's addresses `interface`; no finding when no seed is configured."""
    gossip = config.gossip
    if not gossip.seeds:
        return []
    networks = (*(address.network for address in interface), *gossip.networks)
    pool = AddressPool(gossip.group.version, tuple(dict.fromkeys(networks)))
    own = [str(address.ip) for address in interface]
    book = SeedBook(gossip.seeds, gossip.port, pool, own)
    return check_seeds(look_up_seeds(gossip.seeds, book, resolve), pool)
