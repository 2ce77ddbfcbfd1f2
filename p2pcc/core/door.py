"""distccd's door: which source addresses may open a connection to distccd, as nftables text.

distccd's own `--allow` admits whole networks; the door narrows that to the pool.  The
daemon keeps an nftables table of its own (family inet, `table_name(port)`) whose input
chain looks only at NEW connections to the distccd port: it accepts them from the
loopback interface (this machine, its own addresses included), from the two member sets
and from the fixed `open_networks`, and answers anyone else with a TCP reset, counted in
the named counter `refused`.  Established connections never meet the chain, so a job
running while its client leaves the pool finishes; distccd is never restarted for a
membership change.

A member is a peer in the table that is not DEAD: it counts from its first accepted
datagram (MAC-verified in a keyed pool) until it is declared dead, leaves (LEAVE drops it
from the table) or is forgotten.  It is admitted at the addresses it announces, which the
gossip engine has already screened (p2pcc.core.addresses) and which a keyed pool's MAC
covers; the datagram's source address is never used, since anyone can forge it.

The shell (`p2pcc.daemon.door`) applies these texts with `nft -f -`: `table_script` at
start (one transaction that also replaces a table a crashed daemon left), then
`update_script` for each change of the member set (one transaction each), and
`resync_script` when an update failed and the table's contents are in doubt.  Pure text
in, text out: no subprocess here.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass

from p2pcc.core.addresses import unscoped_addresses
from p2pcc.core.peers import Liveness, Peer

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The named sets of member addresses, by IP version.
MEMBER_SETS = {4: "members_v4", 6: "members_v6"}
#: The named counter of refused connections.
REFUSED_COUNTER = "refused"


def table_name(port: int) -> str:
    """The door table of the daemon whose distccd listens on `port` (one daemon per port)."""
    return f"p2pcc_door_{port}"


@dataclass(frozen=True, slots=True)
class DoorPolicy:
    """What the door is built from: distccd's port and the networks let in though not
    members (`distccd.allow_stock_clients`, and in an unkeyed pool `distccd.allow`)."""

    port: int
    open_networks: tuple[IPNetwork, ...] = ()
    keyed: bool = True  # False: the open networks include distccd's whole allow list

    @property
    def table(self) -> str:
        return table_name(self.port)


@dataclass(frozen=True, slots=True)
class DoorReport:
    """The door as `status` shows it: how many addresses it admits, how many
    connections it refused, or why it is not up (and distccd therefore does not serve)."""

    table: str
    members: int = 0
    refused: int = 0
    open_networks: tuple[str, ...] = ()
    problem: str | None = None

    def as_document(self) -> dict[str, object]:
        return {
            "table": self.table,
            "members": self.members,
            "refused": self.refused,
            "open_networks": list(self.open_networks),
            "problem": self.problem,
        }


def open_networks(
    stock_clients: Iterable[IPNetwork], allow: Iterable[IPNetwork], *, keyed: bool
) -> tuple[IPNetwork, ...]:
    """The networks let in though not members: the stock clients, and, in an unkeyed pool
    (where membership proves nothing), all of distccd's `allow` networks."""
    networks = list(stock_clients)
    if not keyed:
        networks += allow
    return _collapsed(networks)


def admitted(peers: Iterable[Peer]) -> frozenset[IPAddress]:
    """The addresses of every member (a peer that is not DEAD), malformed ones left out."""
    found: set[IPAddress] = set()
    for peer in peers:
        if peer.liveness is not Liveness.DEAD:
            found.update(unscoped_addresses(peer.status.addresses))
    return frozenset(found)


def table_script(policy: DoorPolicy, members: Iterable[IPAddress]) -> str:
    """The whole table, replacing any table of that name, as one `nft -f` transaction."""
    table = f"inet {policy.table}"
    by_version = _by_version(members)
    lines = [f"table {table}", f"delete table {table}", f"table {table} {{"]
    for version, set_name in MEMBER_SETS.items():
        elements = _elements(by_version[version])
        lines.append(f"\tset {set_name} {{ type ipv{version}_addr;{elements} }}")
    lines += [
        f"\tcounter {REFUSED_COUNTER} {{ }}",
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy accept;",
        f"\t\ttcp dport {policy.port} ct state new jump door",
        "\t}",
        "\tchain door {",
        '\t\tiif "lo" accept',
        f"\t\tip saddr @{MEMBER_SETS[4]} accept",
        f"\t\tip6 saddr @{MEMBER_SETS[6]} accept",
    ]
    for version, match in ((4, "ip"), (6, "ip6")):
        networks = [str(n) for n in _collapsed(policy.open_networks) if n.version == version]
        if networks:
            lines.append(f"\t\t{match} saddr {{ {', '.join(networks)} }} accept")
    lines += [f'\t\tcounter name "{REFUSED_COUNTER}" reject with tcp reset', "\t}", "}"]
    return "\n".join(lines) + "\n"


def update_script(table: str, old: Iterable[IPAddress], new: Iterable[IPAddress]) -> str:
    """The element changes from `old` to `new` as one transaction ("" when none)."""
    old_set, new_set = frozenset(old), frozenset(new)
    gone, come = _by_version(old_set - new_set), _by_version(new_set - old_set)
    lines = []
    for version, set_name in MEMBER_SETS.items():
        if gone[version]:
            lines.append(f"delete element inet {table} {set_name} {{ {_joined(gone[version])} }}")
        if come[version]:
            lines.append(f"add element inet {table} {set_name} {{ {_joined(come[version])} }}")
    return "".join(f"{line}\n" for line in lines)


def resync_script(table: str, members: Iterable[IPAddress]) -> str:
    """Empty both sets and fill them with `members`, as one transaction: whatever an
    earlier failed update left, the sets hold exactly `members` afterwards."""
    by_version = _by_version(members)
    lines = []
    for version, set_name in MEMBER_SETS.items():
        lines.append(f"flush set inet {table} {set_name}")
        if by_version[version]:
            lines.append(
                f"add element inet {table} {set_name} {{ {_joined(by_version[version])} }}"
            )
    return "".join(f"{line}\n" for line in lines)


def delete_script(table: str) -> str:
    """Remove the table, whether or not it exists (at exit, also after a failure)."""
    return f"table inet {table}\ndelete table inet {table}\n"


def refused_count(nft_json: str) -> int:
    """The packets of the `refused` counter in `nft -j list counter ...` output; raises
    ValueError for output without it."""
    try:
        items = json.loads(nft_json)["nftables"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"not nft JSON output: {error}") from error
    for item in items:
        counter = item.get("counter") if isinstance(item, dict) else None
        if isinstance(counter, dict) and counter.get("name") == REFUSED_COUNTER:
            packets = counter.get("packets")
            if isinstance(packets, int) and packets >= 0:
                return packets
    raise ValueError("no refused counter in nft's output")


def _by_version(addresses: Iterable[IPAddress]) -> dict[int, list[IPAddress]]:
    """Addresses split by IP version, each list sorted (stable scripts, easy tests)."""
    split: dict[int, list[IPAddress]] = {4: [], 6: []}
    for address in addresses:
        split[address.version].append(address)
    return {version: sorted(found) for version, found in split.items()}


def _elements(addresses: list[IPAddress]) -> str:
    return f" elements = {{ {_joined(addresses)} }};" if addresses else ""


def _joined(addresses: Iterable[IPAddress]) -> str:
    return ", ".join(str(address) for address in addresses)


def _collapsed(networks: Iterable[IPNetwork]) -> tuple[IPNetwork, ...]:
    """Networks without overlaps (nft refuses overlapping intervals), IPv4 first."""
    networks = list(networks)
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    return (*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6))


#: What to do when nft fails to set the door up, by what its message says.
_FIXES = (
    ("not permitted", "run the daemon as root or with CAP_NET_ADMIN (p2pcc.service has it)"),
    ("not installed", "install nftables (`apt install nftables`)"),
    ("no such file or directory", "the kernel lacks nf_tables: `modprobe nf_tables`"),
    ("protocol not supported", "the kernel lacks nf_tables: `modprobe nf_tables`"),
)


def failure_with_fix(message: str) -> str:
    """nft's complaint about setting the door up, with what to do about it."""
    lowered = message.lower()
    for clue, fix in _FIXES:
        if clue in lowered:
            return f"{message}: {fix}"
    return f"{message}: see docs/troubleshooting.md, 'distccd does not serve: the door'"
