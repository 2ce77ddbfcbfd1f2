"""The proof schedule and what results change, on a float clock: never-proven pairs
first, then each at most once per period, only while idle and only peers ready for a
job; a different object disproves the pair until a proof passes or the peer restarts."""

from __future__ import annotations

from dataclasses import replace

from p2pcc.core.proof import Outcome, ProofResult, ProofTarget
from p2pcc.core.proof_book import (
    BACKGROUND_SPACING,
    IDLE_BUILD_LOAD,
    PERIOD,
    ProofBook,
    is_idle,
)

FP12, FP11 = "1" * 16, "2" * 16
A = ProofTarget(b"\x0a" * 16, "alpha", 1, FP12, "c", "gcc-12", "10.0.0.10:3632/1", True)
B = replace(A, node_id=b"\x0b" * 16, name="beta", host="10.0.0.11:3632/1")
A11 = replace(A, fingerprint=FP11, compiler="gcc-11")
C = replace(A, node_id=b"\x0c" * 16, name="gamma", host="10.0.0.12:3632/1")
D = replace(A, node_id=b"\x0d" * 16, name="delta", host="10.0.0.13:3632/1")
EVERY = frozenset(t.key for t in (A, B, A11, C, D))  # every pair in our lines


def result(target: ProofTarget, outcome: Outcome, at: float) -> ProofResult:
    return ProofResult(target, outcome, "", 0.1, at, 1_800_000_000.0 + at)


def book_of(*targets: ProofTarget) -> ProofBook:
    book = ProofBook()
    book.set_targets(targets)
    return book


def test_idle_means_our_builds_load_below_the_bound() -> None:
    assert is_idle(0.0)
    assert is_idle(IDLE_BUILD_LOAD - 0.01)
    assert not is_idle(IDLE_BUILD_LOAD)
    assert not is_idle(float("inf"))


def test_nothing_is_due_while_a_build_runs_here() -> None:
    assert book_of(A).due(0.0, idle=False, in_line=EVERY) is None
    assert book_of(A).due(0.0, idle=True, in_line=EVERY) == A


def test_each_pair_once_per_period_never_proven_first_then_the_oldest() -> None:
    book = book_of(A, B, A11)
    order = []
    for now in (0.0, 1.0, 2.0):
        due = book.due(now, idle=True, in_line=EVERY)
        assert due is not None
        order.append(due)
        book.record(result(due, Outcome.OK, now))
    assert order == [A, B, A11]
    assert book.due(PERIOD - 0.01, idle=True, in_line=EVERY) is None
    assert book.due(PERIOD, idle=True, in_line=EVERY) == A  # proven at 0: the oldest
    assert book.due(PERIOD + 2.0, idle=True, in_line=EVERY) == A


def test_a_peer_not_ready_for_jobs_is_not_proven() -> None:
    assert book_of(replace(A, ready=False)).due(0.0, idle=True, in_line=EVERY) is None


def test_the_pairs_of_our_lines_go_first_the_rest_one_per_background_spacing() -> None:
    """Beyond our hosts lines a pair is proven one per BACKGROUND_SPACING at most: what
    proving costs a node and each peer stays flat as the pool grows."""
    book = book_of(A, B, C, D)
    line = frozenset({B.key, D.key})
    proven = []
    for now in (0.0, 1.0, 2.0, 3.0, 4.0, BACKGROUND_SPACING + 2.0, BACKGROUND_SPACING + 3.0):
        due = book.due(now, idle=True, in_line=line)
        if due is not None:
            proven.append((now, due.name))
            book.record(result(due, Outcome.OK, now))
    assert proven == [
        (0.0, "beta"),
        (1.0, "delta"),  # the line's pairs, one after the other
        (2.0, "alpha"),  # then the rest: one ...
        (BACKGROUND_SPACING + 2.0, "gamma"),  # ... per spacing
    ]


def test_a_disproven_pair_is_proven_again_as_one_of_our_lines() -> None:
    """Its proof left it out of the line; it must not wait among the rest of the pool
    to be let back in."""
    book = book_of(A, B, C)
    book.record(result(A, Outcome.DIFFERENT, 0.0))
    book.record(result(B, Outcome.OK, 0.0))
    assert book.due(1.0, idle=True, in_line=frozenset()) == C  # the rest: one now
    book.record(result(C, Outcome.OK, 1.0))
    assert book.due(PERIOD + 0.5, idle=True, in_line=frozenset()) == A
    assert book.due(PERIOD + 0.5, idle=True, in_line=frozenset({A.key})) == A


def test_a_different_object_disproves_the_pair_until_a_proof_passes() -> None:
    book = book_of(A, A11)
    assert book.record(result(A, Outcome.DIFFERENT, 0.0)) is True
    assert book.disproven() == {FP12: frozenset({A.node_id})}  # gcc-11 untouched
    assert book.record(result(A, Outcome.DIFFERENT, PERIOD)) is False  # no change
    assert book.record(result(A, Outcome.OK, 2 * PERIOD)) is True
    assert book.disproven() == {}


def test_failures_that_say_nothing_of_the_code_disprove_nothing() -> None:
    book = book_of(A)
    for outcome in set(Outcome) - {Outcome.DIFFERENT}:
        assert book.record(result(A, outcome, 0.0)) is False
    assert book.disproven() == {}


def test_a_restarted_peer_is_forgiven_and_proven_again_at_once() -> None:
    book = book_of(A)
    book.record(result(A, Outcome.DIFFERENT, 0.0))
    restarted = replace(A, incarnation=2)
    assert book.set_targets([restarted]) is True
    assert book.disproven() == {}
    assert book.due(1.0, idle=True, in_line=EVERY) == restarted


def test_a_peer_that_stops_offering_the_compiler_is_forgotten() -> None:
    book = book_of(A, B)
    book.record(result(A, Outcome.DIFFERENT, 0.0))
    assert book.set_targets([B]) is True
    assert book.disproven() == {}
    assert book.result(A) is None
    # A proof that ends after its pair went is dropped, not kept.
    assert book.record(result(A, Outcome.DIFFERENT, 1.0)) is False
    assert book.result(A) is None


def test_the_peer_being_proven_is_known_while_the_proof_runs() -> None:
    book = book_of(A)
    assert book.proving == frozenset()
    book.begin(A)
    assert book.proving == {A.node_id}
    book.end()
    assert book.proving == frozenset()


def test_documents_list_every_target_with_its_last_proof() -> None:
    book = book_of(A, B)
    book.record(replace(result(A, Outcome.DIFFERENT, 5.0), detail="812 bytes against 790 here"))
    first, second = book.documents()
    assert first == {
        "node_id": A.node_id.hex(),
        "name": "alpha",
        "fingerprint": FP12,
        "language": "c",
        "compiler": "gcc-12",
        "host": "10.0.0.10:3632/1",
        "last": {
            "outcome": "different object",
            "detail": "812 bytes against 790 here",
            "seconds": 0.1,
            "at": 1_800_000_005.0,
            "advice": first["last"]["advice"],
        },
        "excluded": True,
    }
    assert "specs file" in first["last"]["advice"]
    assert second["last"] is None
    assert second["excluded"] is False
