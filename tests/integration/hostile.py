"""A hostile sender for the bad-input campaign, run inside its own test-bed workstation.

    python hostile.py capture ADDRESS GROUP PORT SECONDS MAX OUT [--relay HOST]
    python hostile.py send ADDRESS PORT PAYLOADS RATE TARGET... [--sources A,B,...]
    python hostile.py publish ADDRESS RECORDS

`capture` joins the gossip group on the interface holding ADDRESS, prints `ready`, and
records up to MAX genuine datagrams (or for SECONDS) to OUT as JSON lines
`{"from": ip, "data": hex}`; with `--relay` it also resends each one at once by unicast
to HOST, the way an attacker would bounce a peer's traffic.  `send` sends every payload
of PAYLOADS (`write_payloads`' format) to PORT of every TARGET (the group or a daemon's
address), at most RATE datagrams per second, round-robin over the source addresses
given (default ADDRESS), then prints `{"sent": n, "seconds": t}`.  Both stop by
themselves after `LIFETIME` seconds.  `publish` registers the mDNS records of RECORDS
(JSON, `Record` fields) with python-zeroconf on ADDRESS's interface, prints `ready`, and
withdraws them when stdin closes (or after `LIFETIME`).

The standard library only (python-zeroconf for `publish`), and nothing here knows a key.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

#: Neither mode runs longer than this, whatever it was asked.
LIFETIME = 60.0

#: Largest UDP payload over IPv4 (65535 minus the IP and UDP headers).
MAX_UDP_PAYLOAD = 65507


def write_payloads(path: Path, payloads: Iterable[bytes]) -> int:
    """Store payloads for `send` as length-prefixed records; returns how many."""
    count = 0
    with path.open("wb") as out:
        for payload in payloads:
            out.write(struct.pack(">I", len(payload)) + payload)
            count += 1
    return count


def read_payloads(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        (size,) = struct.unpack_from(">I", data, offset)
        yield data[offset + 4 : offset + 4 + size]
        offset += 4 + size


def read_capture(path: Path) -> list[tuple[str, bytes]]:
    """(sender, datagram) pairs `capture` recorded, in arrival order."""
    lines = path.read_text().splitlines() if path.exists() else []
    return [(r["from"], bytes.fromhex(r["data"])) for r in map(json.loads, lines)]


def capture(  # noqa: PLR0917 - the command line's positional arguments, in order
    address: str, group: str, port: int, seconds: float, limit: int, out: Path, relay: str | None
) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    receiver.bind((group, port))
    membership = socket.inet_aton(group) + socket.inet_aton(address)
    receiver.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    print("ready", flush=True)
    deadline = time.monotonic() + min(seconds, LIFETIME)
    count = 0
    with out.open("w") as record:
        while count < limit and (left := deadline - time.monotonic()) > 0:
            receiver.settimeout(left)
            try:
                data, (source, _) = receiver.recvfrom(MAX_UDP_PAYLOAD)
            except TimeoutError:
                break
            if source == address:
                continue
            if relay is not None:
                sender.sendto(data, (relay, port))
            record.write(json.dumps({"from": source, "data": data.hex()}) + "\n")
            count += 1
    print(json.dumps({"captured": count}), flush=True)


def send(port: int, payloads: Path, rate: float, targets: list[str], sources: list[str]) -> None:
    sockets = []
    for source in sources:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((source, 0))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(source))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sockets.append(sock)
    started = time.monotonic()
    sent = 0
    for index, payload in enumerate(read_payloads(payloads)):
        sock = sockets[index % len(sockets)]
        for target in targets:
            due = started + sent / rate
            if (pause := due - time.monotonic()) > 0:
                time.sleep(pause)
            if time.monotonic() - started > LIFETIME:
                break
            sock.sendto(payload, (target, port))
            sent += 1
    print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - started, 3)}), flush=True)


def publish(address: str, records_file: Path) -> None:
    """Register every record as given, however wrong; withdraw them when stdin closes."""
    import select

    import zeroconf

    zc = zeroconf.Zeroconf(interfaces=[address], ip_version=zeroconf.IPVersion.V4Only)
    try:
        for record in json.loads(records_file.read_text()):
            properties = {
                key: bytes.fromhex(value["hex"]) if isinstance(value, dict) else value
                for key, value in record["properties"].items()
            }
            info = zeroconf.ServiceInfo(
                record["type"],
                f"{record['instance']}.{record['type']}",
                port=record["port"],
                properties=properties,
                server=f"{record.get('server', 'mallory')}.local.",
                parsed_addresses=record.get("addresses", [address]),
            )
            zc.register_service(info, cooperating_responders=True)  # no probing: quicker
        print("ready", flush=True)
        select.select([sys.stdin], [], [], LIFETIME)
    finally:
        zc.close()


def main(argv: list[str]) -> None:
    mode, *rest = argv
    if mode == "capture":
        relay = rest[rest.index("--relay") + 1] if "--relay" in rest else None
        address, group, port, seconds, limit, out = rest[:6]
        capture(address, group, int(port), float(seconds), int(limit), Path(out), relay)
    elif mode == "send":
        sources: list[str] = []
        if "--sources" in rest:
            at = rest.index("--sources")
            sources = rest[at + 1].split(",")
            rest = rest[:at] + rest[at + 2 :]
        address, port, payloads, rate, *targets = rest
        send(int(port), Path(payloads), float(rate), targets, sources or [address])
    elif mode == "publish":
        publish(rest[0], Path(rest[1]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
