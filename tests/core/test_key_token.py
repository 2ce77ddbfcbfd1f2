"""The join token: round trip, and every way a pasted token can be wrong."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import limits
from p2pcc.core.key_token import (
    MAX_TOKEN_KEY_BYTES,
    TOKEN_PREFIX,
    KeyTokenError,
    decode_token,
    encode_token,
)

KEY = bytes(range(32))
#: Golden: the token of KEY, as docs/cli.md shows the form.
TOKEN = encode_token(KEY)


def test_the_form_is_versioned_base64url_without_padding() -> None:
    assert TOKEN.startswith("p2pcc-key-1:")
    body = TOKEN[len(TOKEN_PREFIX) :]
    assert "=" not in body
    assert "+" not in body
    assert "/" not in body
    assert len(TOKEN) == len("p2pcc-key-1:") + 48  # 32 key bytes + 4 checksum bytes


@given(st.binary(min_size=limits.MIN_KEY_BYTES, max_size=MAX_TOKEN_KEY_BYTES))
def test_every_key_round_trips(key: bytes) -> None:
    assert decode_token(encode_token(key)) == key


def test_whitespace_anywhere_is_ignored() -> None:
    wrapped = "  " + TOKEN[:20] + "\n" + TOKEN[20:40] + "\r\n\t" + TOKEN[40:] + "\n\n"
    assert decode_token(wrapped) == KEY


@pytest.mark.parametrize("length", range(len(TOKEN_PREFIX), len(TOKEN)))
def test_every_truncation_is_caught(length: int) -> None:
    with pytest.raises(KeyTokenError, match="the token is damaged"):
        decode_token(TOKEN[:length])


def test_a_changed_character_fails_the_checksum() -> None:
    position = len(TOKEN_PREFIX) + 10
    changed = TOKEN[:position] + ("A" if TOKEN[position] != "A" else "B") + TOKEN[position + 1 :]
    with pytest.raises(KeyTokenError, match="checksum mismatch"):
        decode_token(changed)


def test_a_character_too_many_is_caught() -> None:
    with pytest.raises(KeyTokenError, match="damaged"):
        decode_token(TOKEN + "A")


def test_another_version_says_so() -> None:
    with pytest.raises(KeyTokenError, match="token version 2, but this p2pcc reads version 1"):
        decode_token("p2pcc-key-2:" + TOKEN[len(TOKEN_PREFIX) :])


@pytest.mark.parametrize("text", ["hello", "p2pcc-key-v1:AAAA", "p2pcc-key-:AAAA"])
def test_something_else_is_not_a_token(text: str) -> None:
    with pytest.raises(KeyTokenError, match="not a p2pcc join token"):
        decode_token(text)


@pytest.mark.parametrize("text", ["", "  \n"])
def test_nothing_is_no_token(text: str) -> None:
    with pytest.raises(KeyTokenError, match="no token given"):
        decode_token(text)


def test_bad_characters_are_damage() -> None:
    with pytest.raises(KeyTokenError, match="not base64url"):
        decode_token(TOKEN_PREFIX + "A" * 47 + "!")


def test_a_short_key_is_refused_even_with_a_good_checksum() -> None:
    with pytest.raises(KeyTokenError, match="key of 8 bytes"):
        decode_token(encode_token(bytes(8)))


def test_a_huge_token_is_refused_before_decoding() -> None:
    with pytest.raises(KeyTokenError, match="too long"):
        decode_token(encode_token(bytes(MAX_TOKEN_KEY_BYTES + 1)))


def test_errors_never_quote_the_token() -> None:
    body = TOKEN[len(TOKEN_PREFIX) :]
    for bad in (TOKEN[:-3], TOKEN + "xx", "p2pcc-key-9:" + body):
        with pytest.raises(KeyTokenError) as caught:
            decode_token(bad)
        assert body[:8] not in str(caught.value)


def test_a_padded_body_still_decodes() -> None:
    key = bytes(range(33))  # 37 bytes with the checksum: base64 needs padding
    padded = encode_token(key) + "=="
    assert decode_token(padded) == key
