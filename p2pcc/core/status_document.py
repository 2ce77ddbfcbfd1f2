"""The `status` document (docs/status-json.md): the node as `p2pcc status --json` shows it.

JSON-ready values only, under a schema number that changes when a field changes
meaning.  Built from the node's read-only answers; ranks come from the node's cached
ranking, so a status request costs no ranking of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from p2pcc import __version__
from p2pcc.core.turnaround import UNKNOWN

if TYPE_CHECKING:
    from p2pcc.core.hosts import Ranking
    from p2pcc.core.local_compilers import LocalCompiler
    from p2pcc.core.node import LocalNode

STATUS_SCHEMA = 1


def status_document(node: LocalNode, now: float, wall: float) -> dict[str, Any]:
    """The whole document at `now` (monotonic), stamped with `wall` (Unix time)."""
    ranking = node.ranking(now)
    return {
        "schema": STATUS_SCHEMA,
        "version": __version__,
        "generated_at": wall,
        "node": _own_document(node, now, wall),
        "peers": _peer_documents(node, ranking, now),
        "stock_servers": [
            {
                "instance": server.instance,
                "addresses": list(server.addresses),
                "port": server.port,
                "loose_key": server.loose_key,
                "cpus": server.cpus,
                "jobs": server.jobs,
            }
            for server in node.reports.stock_servers()
        ],
        "seeds": [seed.as_document() for seed in node.reports.seeds],
        "proofs": node.reports.proofs.documents(),
        "counters": _counters(node, now),
        "hosts": {
            fingerprint: {"hosts": line.hosts, "jobs": line.jobs}
            for fingerprint, line in ranking.hosts.items()
        },
    }


def _own_document(node: LocalNode, now: float, wall: float) -> dict[str, Any]:
    status, pause, shared = node.status, node.pause, node.shared_id
    return {
        "node_id": node.node_id.hex(),
        "incarnation": node.incarnation,
        "name": status.name,
        "addresses": list(status.addresses),
        "distccd_port": status.distccd_port,
        "state": status.state.value,
        "serving": node.serving,
        "pause": None if pause is None else pause.as_document(),
        "cpus": status.cpus,
        "load": status.load,
        "mem_available": status.mem_available,
        "slots": status.slots,
        "jobs": status.jobs,
        "power": status.power,
        "compilers": [_compiler_document(compiler) for compiler in node.compilers],
        "cutoff_problem": node.reports.cutoff_problem,
        "door": None if node.reports.door is None else node.reports.door.as_document(),
        "job_guard": node.reports.guard.as_document(),
        "duplicate_id": None if shared is None else shared.document(node.peers(), now, wall),
        # Only `gossip.insecure = true` runs a pool without a key (docs/security.md, Keys).
        "insecure": not node.statistics(now).authenticated,
    }


def _peer_documents(node: LocalNode, ranking: Ranking, now: float) -> list[dict[str, Any]]:
    """Each peer's summary with its rank (from 1) for every local compiler it serves."""
    ranks: dict[bytes, dict[str, int]] = {}
    for fingerprint, ranked in ranking.ranked.items():
        for position, entry in enumerate(ranked, start=1):
            ranks.setdefault(entry.peer.node_id, {})[fingerprint] = position
    turnarounds = node.reports.turnaround.figures(now)
    return [
        {
            **peer.summary(now),
            "ranks": ranks.get(peer.node_id, {}),
            "turnaround": turnarounds.get(peer.node_id, UNKNOWN).as_document(),
            "delivered": node.delivered.get(peer.node_id, 1.0),
        }
        for peer in node.peers()
    ]


def _counters(node: LocalNode, now: float) -> dict[str, Any]:
    stats = node.statistics(now)
    return {
        "packets_in": stats.packets_in,
        "packets_out": stats.packets_out,
        "bytes_in": stats.bytes_in,
        "bytes_out": stats.bytes_out,
        "drops": stats.drops,
        "unicast_targets": stats.unicast_targets,
        "state_interval": stats.state_interval,
        "news_queued": stats.news_queued,
        "watched": stats.watched,
        "syncs_served": stats.syncs_served,
        "refused_addresses": stats.refused_addresses,
        "mdns_drops": node.reports.mdns_drops(),
        "send_errors": node.reports.send_errors(),
        "receive_errors": node.reports.receive_errors(),
        "aborted_connections": node.reports.aborted_connections,
        "jobs_taken_back": node.reports.taken_back,
        "jobs_handed_back": node.reports.handed_back,
    }


def _compiler_document(compiler: LocalCompiler) -> dict[str, Any]:
    fingerprint = compiler.fingerprint
    return {
        "fingerprint": fingerprint.id,
        "names": list(compiler.names),
        "family": fingerprint.family,
        "language": fingerprint.language,
        "version": fingerprint.version,
        "loose_key": fingerprint.loose_key,
        "remote_name": fingerprint.remote_name,
        "offered": not compiler.withheld,
        "withheld": compiler.withheld,
    }
