"""Resolving `gossip.seeds` for the node: at start, then every SEED_REFRESH seconds.

A literal address is taken as it is; a name is looked up in the gossip group's family
only (the daemon gossips in no other), by getaddrinfo in a worker thread, since it
blocks.  Each lookup is bounded by LOOKUP_TIMEOUT: a resolver that hangs costs an
abandoned thread (at most LOOKUP_THREADS at once, so hung lookups cannot pile up), never
the daemon.  The names are looked up side by side, and each answer is handed over when
it comes, so a slow name never holds back a fast one.

What an answer means (last good endpoints kept through failures, warnings once, own
and refused addresses left out) is `p2pcc.core.seeds.SeedBook`'s to decide; this task
moves the answers to it, logs its notices, and gives the node the endpoints and
`status` the seeds' states.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from functools import partial

import trio

from p2pcc.core.addresses import AddressPool
from p2pcc.core.seeds import LOOKUP_TIMEOUT, Endpoint, Notice, Seed, SeedBook, SeedState

log = logging.getLogger("p2pcc.daemon.seeds")

#: Seconds between two lookups of a seed's name.  A seed's DNS record changes seldom
#: and a lookup costs a query, but a renumbered seed should be heard again within a
#: minute, about as soon as a person would notice it is gone.
SEED_REFRESH = 60.0

#: Worker threads looking names up at once; one that hangs keeps its thread.
LOOKUP_THREADS = 4

#: (host, IP version) to that host's addresses of that version; OSError says why not.
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


def thread_resolver(threads: int = LOOKUP_THREADS) -> Resolve:
    """getaddrinfo in worker threads, at most `threads` at once."""
    limiter = trio.CapacityLimiter(threads)

    async def resolve(host: str, version: int) -> Sequence[str]:
        family = socket.AF_INET6 if version == 6 else socket.AF_INET
        lookup = partial(socket.getaddrinfo, host, None, family, socket.SOCK_DGRAM)
        infos = await trio.to_thread.run_sync(lookup, abandon_on_cancel=True, limiter=limiter)
        return [str(info[4][0]) for info in infos]

    return resolve


@dataclass(frozen=True, slots=True)
class SeedTiming:
    """How often names are looked up again and how long one lookup may take."""

    refresh: float = SEED_REFRESH
    timeout: float = LOOKUP_TIMEOUT


async def serve_seeds(
    seeds: Sequence[Seed],
    *,
    default_port: int,
    pool: AddressPool,
    own: Collection[str],
    set_seeds: Callable[[Sequence[Endpoint], float], None],
    on_report: Callable[[tuple[SeedState, ...]], None],
    resolve: Resolve | None = None,
    timing: SeedTiming = SeedTiming(),
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep `set_seeds` (the node's) given the seeds' endpoints; `started()` once the
    literal addresses are handed over, before any name is looked up."""
    book = SeedBook(seeds, default_port, pool, own)
    hand_over = partial(_hand_over, book, set_seeds, on_report)
    names = [seed for seed in seeds if seed.literal is None]
    for seed in seeds:
        if seed.literal is not None:
            _log(book.resolved(str(seed), [seed.host]))
    hand_over()
    task_status.started()
    resolve = thread_resolver() if resolve is None else resolve
    due = trio.current_time()
    while names:
        async with trio.open_nursery() as lookups:
            for seed in names:
                lookups.start_soon(_look_up, seed, book, resolve, timing.timeout, hand_over)
        due += timing.refresh
        await trio.sleep_until(due)


async def _look_up(
    seed: Seed, book: SeedBook, resolve: Resolve, timeout: float, hand_over: Callable[[], None]
) -> None:
    """One lookup of `seed`'s name, its outcome told to `book` and handed over."""
    outcome: Sequence[str] | str = f"no answer within {timeout:g} s"
    with trio.move_on_after(timeout):
        try:
            outcome = list(await resolve(seed.host, book.version))
        except OSError as error:
            outcome = error.strerror or str(error)
    if isinstance(outcome, str):
        _log(book.failed(str(seed), outcome))
    else:
        _log(book.resolved(str(seed), outcome))
    hand_over()


def _hand_over(
    book: SeedBook,
    set_seeds: Callable[[Sequence[Endpoint], float], None],
    on_report: Callable[[tuple[SeedState, ...]], None],
) -> None:
    set_seeds(book.endpoints(), trio.current_time())
    on_report(book.states())


def _log(notices: Sequence[Notice]) -> None:
    for notice in notices:
        log.log(logging.WARNING if notice.warning else logging.INFO, "%s", notice.text)
