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

#: News entries in one datagram.  The smallest entry (a LEAVE or SUSPECT) is 24 bytes,
#: so about 55 fit MAX_DATAGRAM; the cap bounds what a decoder builds from one datagram.
MAX_NEWS = 48

#: A SYNC cookie: a truncated HMAC, like the datagram MAC (core/sync.py).
COOKIE_BYTES = 16

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
#: Not more: the state rate bound (core/gossip.py, STATE_RATE) stretches a member's state
#: interval to members / 20 s, 100 s at 2,048, beyond which its load figures are too old
#: to rank by.
MAX_PEERS = 2048

#: Seed endpoints (`gossip.seeds`, every address a name resolves to counted): a few per
#: subnet are plenty, since any one member that answers brings in the whole pool.
MAX_SEEDS = 32

#: Departed node ids remembered to refuse replays of their old packets.  Twice the peer
#: cap: every peer can leave and rejoin once before the oldest memory is dropped.
MAX_TOMBSTONES = 2 * MAX_PEERS

#: This machine's distcc connections to peers the turnaround measurement follows at once
#: (core/job_connections.py).  A client running `make -j64` against sixteen peers holds
#: 64; the cap only bounds what a flood of connections can make the daemon remember.
MAX_JOB_CONNECTIONS = 4096

#: Bytes read from each stream of one compiler probe (`--version`, `-dumpmachine`, ldd).
#: Real answers are under 2 KiB; a broken "compiler" printing garbage is killed here.
MAX_PROBE_OUTPUT = 64 * 1024

# --- control socket (any local user may connect) ----------------------------------------

#: One request line, newline excluded.  Real requests are under 200 bytes; the cap bounds
#: what one local client makes the daemon buffer.
MAX_CONTROL_LINE = 64 * 1024

#: One response line the CLI accepts.  A status of MAX_PEERS peers with MAX_COMPILERS each
#: is a few MiB; a broken daemon streaming garbage must not exhaust the client.
MAX_CONTROL_RESPONSE = 16 * 1024 * 1024

#: Control connections served at once; more are answered "busy" and closed.  A few people
#: running `p2pcc status` never come near it; a runaway script cannot pin the daemon.
MAX_CONTROL_CONNECTIONS = 32

#: Seconds a control client may take to send a whole request line (and to read the
#: answer), so a client that connects and says nothing cannot hold a slot forever.
CONTROL_IDLE_TIMEOUT = 5.0

#: Longest timed pause, in seconds: 31 days.  Longer absences are an untimed pause; the
#: cap also keeps `now + seconds` far below MAX_TIMESTAMP.
MAX_PAUSE_SECONDS = 31 * 24 * 3600.0

# --- zeroconf (mDNS/DNS-SD; anyone on the link may answer) -----------------------------

#: One DNS label (RFC 1035): an instance name, the distcc subtype label.
MAX_DNS_LABEL = 63

#: Keys in one TXT record we read.  Stock distccd sends 7, we send 8 at most; a record
#: with more is neither, and parsing it would only cost us.
MAX_TXT_KEYS = 16

#: One TXT value: a TXT string is at most 255 bytes (RFC 6763 6.1) including its key.
MAX_TXT_VALUE = 255

#: p2pcc nodes remembered from mDNS.  Each may become a peer, so the peer table's cap;
#: forged records can fill this table but not grow it.
MAX_MDNS_NODES = MAX_PEERS

#: Stock distcc servers remembered.  An office has a few dozen; they are only listed
#: (lower confidence), so a flood of forged ones is cut here.
MAX_STOCK_SERVERS = 128

#: Browsed names waiting for (or in) resolution.  Real changes come a few at a time; a
#: flood of announced names beyond this is dropped rather than queued without bound.
MAX_MDNS_PENDING = 32

#: Browse events queued from zeroconf's thread to trio; more are dropped and logged.
MAX_MDNS_EVENTS = 256

#: Resolving threads at once: resolution of an unanswered name blocks its thread for
#: MDNS_RESOLVE_TIMEOUT, so a few dead names cannot hold up the others.
MDNS_RESOLVE_THREADS = 4

#: Seconds a resolve waits for SRV/TXT/address records.  Live responders answer in
#: milliseconds (usually the browse answer already carried them: python-zeroconf's default).
MDNS_RESOLVE_TIMEOUT = 3.0

#: Seconds between two changes of our published distcc record (jobs, cpus...).  Each
#: change is multicast three times to every host; stock clients read TXT only when they
#: first resolve us, so faster updates buy nothing.  Withdrawal is never delayed.
MDNS_MIN_UPDATE_INTERVAL = 10.0

#: (instance, reason) pairs remembered so a bad record is logged once, not at every
#: announcement; the memory is cleared when it reaches this size.
MAX_MDNS_LOGGED_DROPS = 1024

# --- the managed distccd ------------------------------------------------------------------

#: Size past which distccd's log is moved to `distccd.log.1` when distccd (re)starts.
#: It lives in the runtime directory (RAM on most systems) and grows ~100 bytes per job;
#: 16 MiB holds about 100,000 jobs, far more than the job-duration statistics read.
DISTCCD_LOG_ROTATE_BYTES = 16 * 1024 * 1024

# --- the build trace (`p2pcc build --trace`) ----------------------------------------------

#: Finished compiles a build's trace keeps; later ones are counted as dropped.  Measured:
#: ~370 bytes each in the model, ~850 more while the document is built, ~240 in the JSON
#: file, so the cap costs ~250 MB at its peak.  It is twice the compile steps of the
#: largest builds (a full Chromium build, ~100,000); 1,000,000 would need over 1 GB.
MAX_TRACE_SPANS = 200_000

#: Changes kept of each counter of the trace (slots, compiles running): one change per
#: 50 ms poll is over an hour of constant change; a real build changes far less often.
MAX_TRACE_SAMPLES = 100_000

#: distcc state files the recorder looks at per poll: a `make -j` of a few hundred jobs
#: has as many; a shared DISTCC_DIR flooded with names costs no more than this.
MAX_TRACE_STATE_FILES = 4096
