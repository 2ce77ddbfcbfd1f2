"""The proof's plan and verdict, without running anything: which peers are targets and
with which host spec, the environment that rules out a local fallback, and how distcc's
answers (captured from distcc 3.4 on this machine) are classified."""

from __future__ import annotations

from dataclasses import replace

import pytest

from p2pcc.core import proof
from p2pcc.core.local_compilers import LocalCompiler
from p2pcc.core.model import NodeState
from p2pcc.core.peers import Liveness
from p2pcc.core.proof import Outcome, ProofTarget, classify, proof_targets
from tests.core.local_nodes import FP, fingerprint
from tests.core.roomy_peers import OTHER_OFFER, peer

GCC12 = LocalCompiler(replace(fingerprint(), id=FP), ("gcc", "cc"))
OFFER12 = replace(OTHER_OFFER, fingerprint=FP, remote_name="x86_64-linux-gnu-gcc-12")


def target(**fields: object) -> ProofTarget:
    base = ProofTarget(
        b"\x01" * 16, "p1", 1, FP, "c", "x86_64-linux-gnu-gcc-12", "10.0.0.1:3632/1", True
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def test_a_peer_offering_our_compiler_is_a_target_with_its_host_spec_alone() -> None:
    offering = peer(7, compilers=(OTHER_OFFER, OFFER12), distccd_port=3700)
    other = peer(8, compilers=(OTHER_OFFER,))  # offers only a compiler we lack
    assert proof_targets([other, offering], [GCC12], lzo=False) == [
        ProofTarget(
            offering.node_id, "p7", 1, FP, "c", "x86_64-linux-gnu-gcc-12", "10.0.0.7:3700/1", True
        )
    ]
    [with_lzo] = proof_targets([offering], [GCC12], lzo=True)
    assert with_lzo.host == "10.0.0.7:3700/1,lzo"


def test_ipv6_only_peers_are_dialled_in_brackets_and_undialable_ones_are_left_out() -> None:
    v6 = peer(3, addresses=("fd00::3",), compilers=(OFFER12,))
    named = peer(4, addresses=("ws4.example",), compilers=(OFFER12,))
    no_port = peer(5, distccd_port=0, compilers=(OFFER12,))
    assert [t.host for t in proof_targets([v6, named, no_port], [GCC12], lzo=False)] == [
        "[fd00::3]:3632/1"
    ]


def test_only_an_alive_active_peer_is_ready_for_a_proof() -> None:
    offers = {"compilers": (OFFER12,)}
    peers = [
        peer(1, **offers),
        peer(2, Liveness.SUSPECT, **offers),
        peer(3, state=NodeState.PAUSED, **offers),
    ]
    assert [t.ready for t in proof_targets(peers, [GCC12], lzo=False)] == [True, False, False]


def test_the_same_compiler_under_two_names_is_proven_once() -> None:
    both = [GCC12, LocalCompiler(fingerprint(), ("x86_64-linux-gnu-gcc-12",))]
    assert len(proof_targets([peer(1, compilers=(OFFER12,))], both, lzo=False)) == 1


def test_commands_are_the_wrappers_distcc_call_and_a_local_compile_without_debug_info() -> None:
    t = target()
    assert proof.local_argv(t, "p2pcc-proof.c", "local.o") == [
        "x86_64-linux-gnu-gcc-12",
        "-O2",
        "-c",
        "p2pcc-proof.c",
        "-o",
        "local.o",
    ]
    remote = proof.remote_argv("distcc", t, "p2pcc-proof.c", "remote.o")
    assert remote[:2] == ["distcc", "x86_64-linux-gnu-gcc-12"]
    assert "-g" not in remote
    assert proof.source_name("c") == "p2pcc-proof.c"
    assert proof.source_name("c++") == "p2pcc-proof.cc"


def test_the_environment_names_the_peer_alone_and_rules_out_any_local_fallback() -> None:
    caller = {
        "PATH": "/home/me/links:/usr/local/bin:/usr/bin",
        "HOME": "/home/me",
        "DISTCC_HOSTS": "localhost/8 10.0.0.9/4",
        "DISTCC_FALLBACK": "1",
        "_DISTCC_SAFEGUARD": "1",
        "P2PCC_CONFIG": "/etc/p2pcc.toml",
    }
    env = proof.proof_env(caller, target(), "/tmp/x/distcc", ["/home/me/links"])
    assert env == {
        "PATH": "/usr/local/bin:/usr/bin",
        "HOME": "/home/me",
        "LC_ALL": "C",
        "DISTCC_HOSTS": "10.0.0.1:3632/1",
        "DISTCC_DIR": "/tmp/x/distcc",
        "DISTCC_FALLBACK": "0",
        "DISTCC_SKIP_LOCAL_RETRY": "1",
    }
    # No backoff period of 0 (distcc would retry a dead host without end): the private
    # DISTCC_DIR alone keeps a failed proof from benching the peer for our builds.
    assert "DISTCC_BACKOFF_PERIOD" not in env


REFUSED = (
    "distcc[7975] ERROR: nonblocking connect to 10.0.0.2:3632 failed: Connection refused\n"
    "distcc[7975] (dcc_build_somewhere) ERROR: failed to distribute and fallbacks are disabled\n"
)
NOT_ADMITTED = (
    "distcc[8181] (dcc_writex) ERROR: failed to write: Connection reset by peer\n"
    "distcc[8181] (dcc_build_somewhere) ERROR: failed to distribute and fallbacks are disabled\n"
)
NOT_WHITELISTED = (
    "distcc[8469] (dcc_readx) ERROR: unexpected eof on fd5\n"
    "distcc[8469] (dcc_r_result_header) ERROR: server provided no answer. Is the server "
    "configured to allow access from your IP address?\n"
    "distcc[8469] (dcc_build_somewhere) ERROR: failed to distribute and fallbacks are disabled\n"
)
COMPILE_FAILED = (
    "x86_64-linux-gnu-gcc-12: error: unrecognized command-line option '-fno-such-flag'\n"
    "distcc[8486] ERROR: compile p2pcc-proof.c on 10.0.0.2:3632/1 failed\n"
)


@pytest.mark.parametrize(
    ("returncode", "stderr", "outcome", "detail"),
    [
        (
            116,
            REFUSED,
            Outcome.REFUSED,
            "nonblocking connect to 10.0.0.2:3632 failed: Connection refused",
        ),
        (116, NOT_ADMITTED, Outcome.NO_ANSWER, "failed to write: Connection reset by peer"),
        (116, NOT_WHITELISTED, Outcome.NO_ANSWER, "unexpected eof on fd5"),
        (
            116,
            "distcc[1] ERROR: connect to 10.0.0.2:3632 timed out\n",
            Outcome.TIMEOUT,
            "connect to 10.0.0.2:3632 timed out",
        ),
        (
            116,
            "distcc[1] ERROR: failed: No route to host\n",
            Outcome.UNREACHABLE,
            "failed: No route to host",
        ),
        (1, COMPILE_FAILED, Outcome.FAILED, "compile p2pcc-proof.c on 10.0.0.2:3632/1 failed"),
        (3, "", Outcome.FAILED, "distcc exited with status 3"),
    ],
)
def test_distccs_failures_are_told_apart(
    returncode: int, stderr: str, outcome: Outcome, detail: str
) -> None:
    assert classify(returncode, stderr, None, b"object") == (outcome, detail)


def test_only_identical_objects_from_a_successful_run_prove_the_peer() -> None:
    assert classify(0, "", b"same", b"same") == (Outcome.OK, "")
    assert classify(0, "", b"theirs!", b"ours") == (
        Outcome.DIFFERENT,
        "7 bytes against 4 here",
    )
    # Exit 0 without an object is distcc's failure, never a pass.
    assert classify(0, "", None, b"ours")[0] is Outcome.FAILED


def test_a_killed_run_is_a_timeout_and_our_own_failure_is_not_the_peers() -> None:
    assert classify(None, "", None, b"ours") == (
        Outcome.TIMEOUT,
        f"killed after {proof.TIMEOUT:g} s",
    )
    assert classify(0, "", b"x", None) == (Outcome.LOCAL, "")


def test_details_are_bounded_and_printable() -> None:
    noisy = "distcc[1] ERROR: \x1b[31m" + "x" * 1000 + "\n"
    _, detail = classify(1, noisy, None, b"ours")
    assert len(detail) == proof.MAX_DETAIL
    assert "\x1b" not in detail


def test_every_failure_has_advice_and_the_source_is_the_same_for_both_languages() -> None:
    assert set(proof.ADVICE) == set(Outcome) - {Outcome.OK}
    assert "hello" in proof.SOURCE
    assert "double" in proof.SOURCE
