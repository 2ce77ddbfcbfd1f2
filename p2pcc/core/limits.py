"""Every bound p2pcc puts on untrusted input or on its own memory, each with its reason.

Anything received from the network is checked against these before it is parsed or
stored, so a hostile or broken peer can cost us at most a fixed amount of memory and
CPU.  Changing a wire cap changes what other nodes accept: treat it as a protocol change.
"""

from __future__ import annotations

# --- datagrams -----------------------------------------------------------------------

#: Largest datagram we send or accept.  An Ethernet MTU of 1500 minus IPv6 (40) and UDP
#: (8) headers leaves 1452; 1400 leaves room for tunnels and VLAN tags, so a gossip
#: message is never fragmented (a lost fragment would lose the whole message).
MAX_DATAGRAM = 1400

#: Truncated HMAC-SHA256 tag length.  128 bits is far beyond what an attacker can guess
#: online at gossip rates (RFC 2104 allows truncation to half the hash length).
MAC_BYTES = 16

#: Keys in a cluster keyring.  The decoder tries each key in turn, so this bounds the
#: HMAC work one forged datagram can cause; rotation needs two, a few spare is plenty.
MAX_KEYS = 8

#: Shortest cluster key we accept: 128 bits, the same strength as the tag.
MIN_KEY_BYTES = 16

#: Random node id, chosen once per machine and kept across restarts.  128 bits make a
#: collision between two honest nodes practically impossible.
NODE_ID_BYTES = 16

# --- fields of a state message (sized so a message at every cap fits MAX_DATAGRAM) ----

#: Node name (UTF-8 bytes).  Linux HOST_NAME_MAX is 64.
MAX_NODE_NAME = 64

#: Addresses one node announces.  A workstation has one or two interfaces on the office
#: network; four covers IPv4 plus IPv6 on two links.
MAX_ADDRESSES = 4

#: Length of one textual address.  INET6_ADDRSTRLEN is 46 including the NUL byte.
MAX_ADDRESS_LEN = 45

#: Compilers one node offers.  Ten at the string caps below keep a full message under
#: MAX_DATAGRAM; a daemon with more offers the first ten in its configured order.
MAX_COMPILERS = 10

#: Raw bytes of a compiler fingerprint id on the wire (shown as 16 hex characters).
#: 64 bits: an accidental collision among the few hundred compilers of an office is
#: about 1e-15; the id is not a security boundary (the MAC is).
FINGERPRINT_BYTES = 8

#: A loose compiler key, "<target triple>--<major version>", e.g. "x86_64-linux-gnu--12".
MAX_LOOSE_KEY = 32

#: A canonical remote compiler name, e.g. "x86_64-linux-gnu-g++-12" (23 characters).
MAX_REMOTE_NAME = 32

#: Free-text pause reason typed by a person ("meeting", "profiling a build").
MAX_PAUSE_REASON = 64

#: Sanity ceilings on numbers a peer reports.  A peer claiming a million slots would
#: otherwise attract every job; these are far above any real workstation.
MAX_CPUS = 4096
MAX_SLOTS = 1024
MAX_JOBS = 65535
MAX_POWER = 1e6
MAX_LOAD = 1e6
MAX_PORT = 65535

#: Available memory a peer reports, in bytes: 1 PiB, far above any workstation.
MAX_MEMORY = 2**50

#: Latest time a peer may report (sent-at, pause-until): 9999-12-31T23:59:59Z, the last
#: second `datetime` can represent, so any received time can be displayed.
MAX_TIMESTAMP = 253402300799.0

#: Counters (incarnation, sequence) are unsigned 64-bit on the wire.
MAX_COUNTER = 2**64 - 1

# --- local memory ----------------------------------------------------------------------

#: Peers held in the table.  A large office has a few hundred workstations; a flood of
#: forged node ids (unauthenticated pool) can fill the table but never grow it further.
MAX_PEERS = 512

#: Departed node ids remembered to refuse replays of their old packets.  Twice the peer
#: cap: every peer can leave and rejoin once before the oldest memory is dropped.
MAX_TOMBSTONES = 2 * MAX_PEERS

#: Bytes read from each stream of one compiler probe (`--version`, `-dumpmachine`, ldd).
#: Real answers are under 2 KiB; a broken "compiler" printing garbage is killed here.
MAX_PROBE_OUTPUT = 64 * 1024
