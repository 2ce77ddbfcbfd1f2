"""The live jobserver's decisions: which make takes which style, what MAKEFLAGS says,
and how many tokens to write or take back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core.jobserver import (
    MAX_JOBS,
    Style,
    Tokens,
    fifo_auth,
    jobserver_makeflags,
    make_style,
    pipe_auth,
    target_tokens,
)


@pytest.mark.parametrize(
    ("text", "style"),
    [
        ("GNU Make 4.3\nBuilt for x86_64-pc-linux-gnu\n", Style.PIPE),
        ("GNU Make 4.0\n", Style.PIPE),
        ("GNU Make 4.4.1\nBuilt for x86_64-pc-linux-gnu\n", Style.FIFO),
        ("GNU Make 5.0\n", Style.FIFO),
        ("GNU Make 3.82\n", None),  # --jobserver-fds, and no way to steer it live
        ("make: unknown option -- -\nusage: make [-BeikNnqrSstWwX]\n", None),  # bmake
        ("", None),
        ("remake 4.3+dbg-1.5\n", None),
    ],
)
def test_the_style_follows_the_make_version(text: str, style: Style | None) -> None:
    assert make_style(text) is style


def test_makeflags_keep_the_users_flags_and_add_the_jobserver() -> None:
    assert jobserver_makeflags("", pipe_auth(3, 4)) == "-j --jobserver-auth=3,4"
    assert (
        jobserver_makeflags(" k --no-print-directory", fifo_auth("/tmp/x/fifo"))
        == "k --no-print-directory -j --jobserver-auth=fifo:/tmp/x/fifo"
    )


@pytest.mark.parametrize(
    ("jobs", "tokens"), [(-3, 0), (0, 0), (1, 0), (2, 1), (40, 39), (10**9, MAX_JOBS - 1)]
)
def test_make_holds_one_token_of_its_own(jobs: int, tokens: int) -> None:
    assert target_tokens(jobs) == tokens


def test_tokens_grow_at_once_and_shrink_as_they_come_back() -> None:
    tokens = Tokens()
    tokens.aim(5)
    assert (tokens.to_write(), tokens.to_take_back()) == (4, 0)
    tokens.wrote(3)  # the pipe took three: one more next time
    assert tokens.to_write() == 1
    tokens.wrote(1)
    tokens.aim(2)  # a peer paused
    assert (tokens.to_write(), tokens.to_take_back()) == (0, 3)
    tokens.took_back(2)
    assert tokens.to_take_back() == 1
    tokens.took_back(5)  # never below none in circulation
    assert (tokens.issued, tokens.to_write()) == (0, 1)


@given(st.lists(st.tuples(st.integers(-5, 10_000), st.integers(0, 50), st.integers(0, 50))))
def test_issued_tokens_stay_within_bounds(steps: list[tuple[int, int, int]]) -> None:
    tokens = Tokens()
    for jobs, written, returned in steps:
        tokens.aim(jobs)
        tokens.wrote(min(written, tokens.to_write()))
        tokens.took_back(min(returned, tokens.to_take_back()))
        assert 0 <= tokens.issued <= MAX_JOBS - 1
        assert tokens.to_write() == 0 or tokens.to_take_back() == 0
