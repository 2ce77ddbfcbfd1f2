"""Golden wire vectors: fixed messages and the exact datagrams they encode to.

docs/wire-format.md shows the same bytes as annotated hex dumps; test_wire.py checks the
two never drift apart.  After a deliberate format change, update the hex here and run
`python tests/core/golden_vectors.py` to print the doc's dump blocks.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, replace

from p2pcc.core.model import (
    CompilerOffer,
    EntryKind,
    Message,
    MessageKind,
    NewsEntry,
    NodeState,
    NodeStatus,
)
from p2pcc.core.wire_status import compilers_digest

#: The documented test key.  It is public: never use it for a real pool.
TEST_KEY = bytes(range(32))
TEST_KEY_LINE = "p2pcc-key-v1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

NODE_ID = bytes.fromhex("00112233445566778899aabbccddeeff")
OTHER_NODE_ID = bytes.fromhex("ffeeddccbbaa99887766554433221100")
THIRD_NODE_ID = bytes.fromhex("0f0e0d0c0b0a09080706050403020100")

ACTIVE_STATUS = NodeStatus(
    name="ws-alice",
    addresses=("192.0.2.10", "2001:db8::10"),
    distccd_port=3632,
    cpus=16,
    load=2.5,
    mem_available=17_179_869_184,
    slots=14,
    jobs=3,
    power=1.25,
    compilers=(
        CompilerOffer("1f2e3d4c5b6a7980", "x86_64-linux-gnu--12", "x86_64-linux-gnu-g++-12"),
        CompilerOffer("0123456789abcdef", "x86_64-pc-linux-gnu--14", "clang++-14"),
    ),
)

PAUSED_STATUS = NodeStatus(
    name="ws-bob",
    addresses=("198.51.100.7",),
    distccd_port=3632,
    cpus=8,
    load=0.0,
    mem_available=4_294_967_296,
    slots=0,
    jobs=1,
    power=0.75,
    state=NodeState.PAUSED,
    pause_reason="meeting",
    pause_until=1_767_229_200.0,
)


@dataclass(frozen=True)
class GoldenVector:
    """A message, whether it is signed with TEST_KEY, and its exact datagram."""

    name: str
    message: Message
    keyed: bool
    datagram: bytes


VECTORS = (
    GoldenVector(
        "state-plain",
        Message(NODE_ID, 3, 42, 1_767_225_600.5, MessageKind.STATE, ACTIVE_STATUS, minor=2),
        keyed=False,
        datagram=bytes.fromhex(
            """
            50324343 01020000 86a26964 c4100011 22334455 66778899 aabbccdd eeffa369
            6e6303a3 7365712a a27473cb 41da556e 40200000 a46b696e 6401a462 6f64798b
            a46e616d 65a87773 2d616c69 6365a461 64647292 aa313932 2e302e32 2e3130ac
            32303031 3a646238 3a3a3130 a4706f72 74cd0e30 a4637075 7310a46c 6f6164cb
            40040000 00000000 a36d656d cf000000 04000000 00a5736c 6f74730e a46a6f62
            7303a570 6f776572 cb3ff400 00000000 00a57374 617465a6 61637469 7665a263
            639293c4 081f2e3d 4c5b6a79 80b47838 365f3634 2d6c696e 75782d67 6e752d2d
            3132b778 38365f36 342d6c69 6e75782d 676e752d 672b2b2d 313293c4 08012345
            6789abcd efb77838 365f3634 2d70632d 6c696e75 782d676e 752d2d31 34aa636c
            616e672b 2b2d3134
            """
        ),
    ),
    GoldenVector(
        "state-keyed",
        Message(NODE_ID, 3, 42, 1_767_225_600.5, MessageKind.STATE, ACTIVE_STATUS, minor=2),
        keyed=True,
        datagram=bytes.fromhex(
            """
            50324343 01020100 86a26964 c4100011 22334455 66778899 aabbccdd eeffa369
            6e6303a3 7365712a a27473cb 41da556e 40200000 a46b696e 6401a462 6f64798b
            a46e616d 65a87773 2d616c69 6365a461 64647292 aa313932 2e302e32 2e3130ac
            32303031 3a646238 3a3a3130 a4706f72 74cd0e30 a4637075 7310a46c 6f6164cb
            40040000 00000000 a36d656d cf000000 04000000 00a5736c 6f74730e a46a6f62
            7303a570 6f776572 cb3ff400 00000000 00a57374 617465a6 61637469 7665a263
            639293c4 081f2e3d 4c5b6a79 80b47838 365f3634 2d6c696e 75782d67 6e752d2d
            3132b778 38365f36 342d6c69 6e75782d 676e752d 672b2b2d 313293c4 08012345
            6789abcd efb77838 365f3634 2d70632d 6c696e75 782d676e 752d2d31 34aa636c
            616e672b 2b2d3134 6178e5ef 78c74fe9 3977520a d3c9d603
            """
        ),
    ),
    GoldenVector(
        "state-paused",
        Message(OTHER_NODE_ID, 1, 7, 1_767_225_630.0, MessageKind.STATE, PAUSED_STATUS, minor=2),
        keyed=False,
        datagram=bytes.fromhex(
            """
            50324343 01020000 86a26964 c410ffee ddccbbaa 99887766 55443322 1100a369
            6e6301a3 73657107 a27473cb 41da556e 47800000 a46b696e 6401a462 6f64798d
            a46e616d 65a67773 2d626f62 a4616464 7291ac31 39382e35 312e3130 302e37a4
            706f7274 cd0e30a4 63707573 08a46c6f 6164cb00 00000000 000000a3 6d656dcf
            00000001 00000000 a5736c6f 747300a4 6a6f6273 01a5706f 776572cb 3fe80000
            00000000 a5737461 7465a670 61757365 64a67265 61736f6e a76d6565 74696e67
            a5756e74 696ccb41 da5571c4 000000a2 636390
            """
        ),
    ),
    GoldenVector(
        "leave-keyed",
        Message(NODE_ID, 3, 43, 1_767_225_660.0, MessageKind.LEAVE, minor=2),
        keyed=True,
        datagram=bytes.fromhex(
            """
            50324343 01020100 85a26964 c4100011 22334455 66778899 aabbccdd eeffa369
            6e6303a3 7365712b a27473cb 41da556e 4f000000 a46b696e 6402d5a6 dc7794ea
            53fe204b 61605627 064f
            """
        ),
    ),
    GoldenVector(
        "probe-keyed",
        Message(NODE_ID, 3, 42, 1_767_225_661.0, MessageKind.PROBE, nonce=77, minor=2),
        keyed=True,
        datagram=bytes.fromhex(
            """
            50324343 01020100 86a26964 c4100011 22334455 66778899 aabbccdd eeffa369
            6e6303a3 7365712a a27473cb 41da556e 4f400000 a46b696e 6403a56e 6f6e6365
            4d85e713 e7d6ba04 c69b59d9 d3c68a67 d8
            """
        ),
    ),
    GoldenVector(
        "news-keyed",
        Message(
            OTHER_NODE_ID,
            1,
            7,
            1_767_225_662.0,
            MessageKind.NEWS,
            news=(
                NewsEntry(EntryKind.STATE, NODE_ID, 3, 42, 1, ACTIVE_STATUS),
                NewsEntry(EntryKind.SUSPECT, THIRD_NODE_ID, 2, 9, 1),
            ),
            minor=2,
        ),
        keyed=True,
        datagram=bytes.fromhex(
            """
            50324343 01020100 86a26964 c410ffee ddccbbaa 99887766 55443322 1100a369
            6e6301a3 73657107 a27473cb 41da556e 4f800000 a46b696e 6405a46e 65777392
            9601c410 00112233 44556677 8899aabb ccddeeff 032a018b a46e616d 65a87773
            2d616c69 6365a461 64647292 aa313932 2e302e32 2e3130ac 32303031 3a646238
            3a3a3130 a4706f72 74cd0e30 a4637075 7310a46c 6f6164cb 40040000 00000000
            a36d656d cf000000 04000000 00a5736c 6f74730e a46a6f62 7303a570 6f776572
            cb3ff400 00000000 00a57374 617465a6 61637469 7665a263 639293c4 081f2e3d
            4c5b6a79 80b47838 365f3634 2d6c696e 75782d67 6e752d2d 3132b778 38365f36
            342d6c69 6e75782d 676e752d 672b2b2d 313293c4 08012345 6789abcd efb77838
            365f3634 2d70632d 6c696e75 782d676e 752d2d31 34aa636c 616e672b 2b2d3134
            9503c410 0f0e0d0c 0b0a0908 07060504 03020100 02090148 83f3ee57 9cf21bc6
            5bfc7cac b521ef
            """
        ),
    ),
    GoldenVector(
        "state-short-keyed",
        Message(
            NODE_ID,
            3,
            44,
            1_767_225_664.0,
            MessageKind.STATE,
            replace(ACTIVE_STATUS, compilers=()),
            deaf=True,
            compilers_digest=compilers_digest(ACTIVE_STATUS.compilers),
            minor=2,
        ),
        keyed=True,
        datagram=bytes.fromhex(
            """
            50324343 01020100 87a26964 c4100011 22334455 66778899 aabbccdd eeffa369
            6e6303a3 7365712c a27473cb 41da556e 50000000 a46b696e 6401a462 6f64798b
            a46e616d 65a87773 2d616c69 6365a461 64647292 aa313932 2e302e32 2e3130ac
            32303031 3a646238 3a3a3130 a4706f72 74cd0e30 a4637075 7310a46c 6f6164cb
            40040000 00000000 a36d656d cf000000 04000000 00a5736c 6f74730e a46a6f62
            7303a570 6f776572 cb3ff400 00000000 00a57374 617465a6 61637469 7665a363
            6364c408 3bbe3ef8 164874c9 a4646561 66012622 580241b3 2e7e302a dc677459
            3292
            """
        ),
    ),
    GoldenVector(
        "sync-keyed",
        Message(
            OTHER_NODE_ID,
            1,
            7,
            1_767_225_663.0,
            MessageKind.SYNC,
            nonce=5,
            cookie=bytes(range(16)),
            minor=2,
        ),
        keyed=True,
        datagram=bytes.fromhex(
            """
            50324343 01020100 87a26964 c410ffee ddccbbaa 99887766 55443322 1100a369
            6e6301a3 73657107 a27473cb 41da556e 4fc00000 a46b696e 6406a56e 6f6e6365
            05a6636f 6f6b6965 c4100001 02030405 06070809 0a0b0c0d 0e0f7f6b 390548b4
            ed4f5add 5de6d6e5 85ce
            """
        ),
    ),
)


def annotated_dump(datagram: bytes) -> str:
    """The annotated hex dump of a datagram, as shown in docs/wire-format.md."""
    lines = _DumpWriter(datagram)
    auth = datagram[6]
    lines.emit(4, 'magic "P2CC"')
    lines.emit(1, f"major version {datagram[4]}")
    lines.emit(1, f"minor version {datagram[5]}")
    lines.emit(1, f"auth {auth}: " + ("HMAC-SHA256-128" if auth else "none"))
    lines.emit(1, "reserved")
    lines.value("payload")
    if auth:
        lines.emit(16, "MAC: HMAC-SHA256(key, all bytes above), first 16 bytes")
    if lines.offset != len(datagram):
        raise ValueError("trailing bytes the annotator does not understand")
    return "\n".join(lines.lines)


_MEANING = {
    "id": "node id",
    "inc": "incarnation",
    "seq": "sequence",
    "ts": "sent at (Unix seconds)",
    "kind": "message kind",
    "body": "state body",
    "name": "node name",
    "addr": "addresses",
    "port": "distccd port",
    "cpus": "cpus",
    "load": "load",
    "mem": "memory available (bytes)",
    "slots": "slots offered",
    "jobs": "jobs running",
    "power": "power index",
    "state": "node state",
    "reason": "pause reason",
    "until": "paused until (Unix seconds)",
    "cc": "compilers offered",
    "gp": "gossip port",
    "nonce": "nonce",
    "cookie": "sync cookie",
    "news": "news entries",
    "ccd": "compilers digest (1.2)",
    "deaf": "deaf",
    "again": "send your whole state (1.2)",
}
_ARRAY_ITEM = {
    "addresses": "address",
    "compilers offered": "compiler offer",
    "news entries": "news entry",
}
_PARTS = {
    "compiler offer": ("fingerprint id", "loose key", "remote name"),
    "news entry": (
        "entry kind",
        "node id",
        "incarnation",
        "sequence",
        "protocol minor version",
        "state body",
    ),
}
_BYTES_PER_LINE = 8


class _DumpWriter:
    """Walks the subset of msgpack our encoder emits, one dump line per token."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0
        self.lines: list[str] = []

    def emit(self, size: int, note: str) -> None:
        chunk = self.data[self.offset : self.offset + size]
        for start in range(0, len(chunk), _BYTES_PER_LINE):
            part = " ".join(f"{b:02x}" for b in chunk[start : start + _BYTES_PER_LINE])
            line = f"{self.offset + start:04x}: {part}"
            text = f"{line:<30}| {note}" if start == 0 else line
            self.lines.append(text.rstrip())
        self.offset += size

    def value(self, meaning: str) -> None:
        lead = self.data[self.offset]
        if 0x80 <= lead <= 0x8F:
            self._map(lead - 0x80, meaning)
        elif 0x90 <= lead <= 0x9F:
            self._array(lead - 0x90, meaning)
        elif 0xA0 <= lead <= 0xBF or lead == 0xD9:
            self._string(lead, meaning)
        else:
            self._scalar(lead, meaning)

    def _scalar(self, lead: int, meaning: str) -> None:
        if meaning == "message kind" and lead <= 0x7F:
            meaning += f" = {MessageKind(lead).name}"
        if lead <= 0x7F:
            self.emit(1, f"int {lead}: {meaning}")
        elif lead in _FIXED:
            fmt, kind = _FIXED[lead]
            (number,) = struct.unpack_from(fmt, self.data, self.offset + 1)
            self.emit(1 + struct.calcsize(fmt), f"{kind} {number}: {meaning}")
        elif lead == 0xC0:
            self.emit(1, f"nil: {meaning}")
        elif lead == 0xC4:
            size = self.data[self.offset + 1]
            raw = self.data[self.offset + 2 : self.offset + 2 + size]
            self.emit(2 + size, f"bin {size}: {meaning} {raw.hex()}")
        else:
            raise ValueError(f"msgpack byte {lead:#04x} at {self.offset} is not annotated")

    def _string(self, lead: int, meaning: str) -> str:
        header, size = (1, lead - 0xA0) if lead != 0xD9 else (2, self.data[self.offset + 1])
        start = self.offset + header
        text = self.data[start : start + size].decode("utf-8")
        note = f'str {size} "{text}": {meaning}' if meaning else f'key "{text}"'
        self.emit(header + size, note)
        return text

    def _map(self, count: int, meaning: str) -> None:
        self.emit(1, f"map of {count}: {meaning}")
        for _ in range(count):
            key = self._string(self.data[self.offset], "")
            self.value(_MEANING.get(key, key))

    def _array(self, count: int, meaning: str) -> None:
        self.emit(1, f"array of {count}: {meaning}")
        for index in range(count):
            parts = _PARTS.get(meaning)
            if parts is not None:
                self.value(parts[index] if index < len(parts) else "extra")
            else:
                self.value(_ARRAY_ITEM.get(meaning, "item"))


_FIXED = {
    0xCA: (">f", "float32"),
    0xCB: (">d", "float64"),
    0xCC: (">B", "uint8"),
    0xCD: (">H", "uint16"),
    0xCE: (">I", "uint32"),
    0xCF: (">Q", "uint64"),
}


def print_doc_blocks() -> None:
    """Print every vector's dump block, ready to paste into docs/wire-format.md."""
    for vector in VECTORS:
        sys.stdout.write(f"<!-- golden:{vector.name} -->\n```text\n")
        sys.stdout.write(annotated_dump(vector.datagram) + "\n```\n\n")


if __name__ == "__main__":
    print_doc_blocks()
