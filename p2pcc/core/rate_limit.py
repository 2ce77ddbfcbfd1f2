"""How much of the daemon each local user may have: token buckets and quiet refusals.

Any local user may connect to the control socket, and a request costs the daemon work:
a pause is logged, kept on disk (fsync'd) and gossiped to every peer.  So each uid has
a bucket per kind of request (`TokenBuckets`): it holds up to `burst` tokens and gains
`rate` a second; a request takes one, or is refused (`busy`) when there is none.  Every
request draws on the uid's request bucket, and a pause or resume on its change bucket
too, so a flood reaches the node at the change rate at most.  A refusal is logged once
per uid and kind per `REFUSAL_REPORT_INTERVAL` (`Reports`), with how many were refused
meanwhile, so a flood also costs a bounded number of log lines.  Root is not limited:
it may stop the daemon anyway, and its monitoring may poll as often as it likes.

Every bound on what one local user may hold is here, with its reason; the server's own
(line length, idle timeout, connections in all) are in `p2pcc.core.limits`.  Pure: the
caller passes `now`, seconds on a monotonic clock.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

#: Requests of any kind a uid may send at once, then per second.  `p2pcc status --watch`
#: asks at most 10 times a second; a script polling the socket in a tight loop is slowed
#: to 20 answers a second.
REQUEST_BURST = 40
REQUEST_RATE = 20.0

#: Pauses and resumes a uid may send at once, then per second.  Each change is one log
#: line, one fsync'd write of the pause file and one gossip datagram to every peer; a
#: person never needs more than a few in a row.
CHANGE_BURST = 10
CHANGE_RATE = 2.0

#: Seconds between two log lines about one uid's refused requests of one kind.
REFUSAL_REPORT_INTERVAL = 60.0

#: Control connections one uid other than root may hold at once; more are told "busy".
#: A command uses one for a fraction of a second; with MAX_CONTROL_CONNECTIONS at 32, no
#: fewer than eight users are needed to fill the socket.
MAX_CONNECTIONS_PER_UID = 4

#: Keys `TokenBuckets` and `Reports` remember at most.  Keys are uids the kernel names,
#: so a few in practice; past the cap, the least recently used is forgotten.
MAX_KEYS = 1024


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float  # when `tokens` was counted


class TokenBuckets:
    """One token bucket per key: up to `burst` tokens, `rate` more a second."""

    def __init__(self, burst: int, rate: float, *, max_keys: int = MAX_KEYS) -> None:
        self.burst = burst
        self.rate = rate
        self._max_keys = max_keys
        self._buckets: dict[Hashable, _Bucket] = {}

    def take(self, key: Hashable, now: float) -> bool:
        """Take a token from `key`'s bucket: True if it had one, False (nothing taken)
        if it is empty."""
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + max(0.0, now - bucket.at) * self.rate)
        bucket.at = now
        taken = bucket.tokens >= 1.0
        if taken:
            bucket.tokens -= 1.0
        self._buckets[key] = bucket  # last in the dict: the most recently used
        if len(self._buckets) > self._max_keys:
            del self._buckets[next(iter(self._buckets))]
        return taken

    def wait(self, key: Hashable, now: float) -> float:
        """Seconds until `key`'s bucket holds a token again (0.0 when it does now)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = bucket.tokens + max(0.0, now - bucket.at) * self.rate
        return max(0.0, (1.0 - tokens) / self.rate)


class Reports:
    """Says when an event of a key is worth a log line: the first, then the first after
    each `interval`, with how many went unreported in between."""

    def __init__(
        self, interval: float = REFUSAL_REPORT_INTERVAL, *, max_keys: int = MAX_KEYS
    ) -> None:
        self.interval = interval
        self._max_keys = max_keys
        self._last: dict[Hashable, tuple[float, int]] = {}  # key -> (reported at, since)

    def due(self, key: Hashable, now: float) -> int | None:
        """Count one event of `key`: None if it goes unreported, else how many events
        went unreported before it."""
        last = self._last.pop(key, None)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return None
        self._last[key] = (now, 0)
        if len(self._last) > self._max_keys:
            del self._last[next(iter(self._last))]
        return 0 if last is None else last[1]


class ControlBudget:
    """Every uid's buckets on the control socket (see the module's docstring)."""

    def __init__(self) -> None:
        self.requests = TokenBuckets(REQUEST_BURST, REQUEST_RATE)
        self.changes = TokenBuckets(CHANGE_BURST, CHANGE_RATE)

    def request(self, uid: int, now: float) -> str:
        """Take a token for one request of any kind: "" if `uid` had one, else why not."""
        return _spend(self.requests, "requests", uid, now)

    def change(self, uid: int, now: float) -> str:
        """Take a token for one pause or resume: "" if `uid` had one, else why not."""
        return _spend(self.changes, "pauses and resumes", uid, now)


def _spend(buckets: TokenBuckets, what: str, uid: int, now: float) -> str:
    if uid == 0 or buckets.take(uid, now):
        return ""
    return (
        f"too many {what} from uid {uid} (at most {buckets.burst} at once, then "
        f"{buckets.rate:g} a second); try again in {buckets.wait(uid, now):.1f} s"
    )
