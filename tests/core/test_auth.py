"""Cluster keys: the keyring's MAC and rotation rules, and the key file parser."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import limits
from p2pcc.core.auth import KEY_PREFIX, Keyring, format_key_line, mac, parse_key_file
from p2pcc.core.errors import ConfigError

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
LINE_A = format_key_line(KEY_A)
LINE_B = format_key_line(KEY_B)


# --- keyring ---------------------------------------------------------------------------


def test_mac_is_truncated_hmac_sha256() -> None:
    # RFC 4231 test case 2, first 16 bytes of the HMAC-SHA256 output.
    assert mac(b"Jefe", b"what do ya want for nothing?") == bytes.fromhex(
        "5bdcc146bf60754e6a042426089575c7"
    )
    assert len(mac(KEY_A, b"")) == limits.MAC_BYTES


def test_empty_keyring_is_an_unauthenticated_pool() -> None:
    keyring = Keyring()
    assert not keyring
    assert len(keyring) == 0
    assert not keyring.verify(b"data", bytes(limits.MAC_BYTES))
    with pytest.raises(ValueError, match="cannot sign"):
        keyring.sign(b"data")


def test_first_key_signs_and_every_key_verifies() -> None:
    keyring = Keyring([KEY_A, KEY_B])
    assert keyring.sign(b"data") == mac(KEY_A, b"data")
    assert keyring.verify(b"data", mac(KEY_A, b"data"))
    assert keyring.verify(b"data", mac(KEY_B, b"data"))
    assert not keyring.verify(b"data", mac(b"c" * 32, b"data"))
    assert not keyring.verify(b"datA", mac(KEY_A, b"data"))
    assert not keyring.verify(b"data", mac(KEY_A, b"data")[:-1])


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param([b"k" * (limits.MIN_KEY_BYTES - 1)], id="short-key"),
        pytest.param([b"k" * 32] * (limits.MAX_KEYS + 1), id="too-many-keys"),
        pytest.param(["a text key of 32 characters long"], id="text-key"),
    ],
)
def test_keyring_rejects_bad_keys(keys: list[bytes]) -> None:
    with pytest.raises(ValueError, match="key"):
        Keyring(keys)


def test_keyring_limits_are_inclusive() -> None:
    assert len(Keyring([b"k" * limits.MIN_KEY_BYTES] * limits.MAX_KEYS)) == limits.MAX_KEYS


def test_keyring_never_shows_its_keys() -> None:
    keyring = Keyring([b"secret-secret-secret"])
    assert repr(keyring) == "Keyring(<1 keys>)"
    assert "secret" not in str(keyring)


def test_keyrings_compare_by_keys_in_order() -> None:
    assert Keyring([KEY_A, KEY_B]) == Keyring((KEY_A, KEY_B))
    assert Keyring([KEY_A, KEY_B]) != Keyring([KEY_B, KEY_A])
    assert hash(Keyring([KEY_A])) == hash(Keyring([KEY_A]))
    assert Keyring([KEY_A]).keys == (KEY_A,)


# --- key file --------------------------------------------------------------------------


def test_key_line_format() -> None:
    assert LINE_A == "p2pcc-key-v1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def test_parse_keeps_order_and_skips_comments_and_blank_lines() -> None:
    text = (
        "# cluster key, rotated 2026-01\n"
        "\n"
        f"  {LINE_B}   # the new key signs\r\n"
        "   # the old one is still accepted:\n"
        f"{LINE_A}"
    )
    assert parse_key_file(text, "/etc/p2pcc/key") == Keyring([KEY_B, KEY_A])


@given(st.binary(min_size=limits.MIN_KEY_BYTES, max_size=128))
def test_any_key_round_trips_through_its_line(key: bytes) -> None:
    assert parse_key_file(format_key_line(key) + "\n", "k") == Keyring([key])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "holds no key", id="empty"),
        pytest.param("# only a comment\n\n", "holds no key", id="comments-only"),
        pytest.param(KEY_A.hex(), "line 1: expected `p2pcc-key-v1:<base64>`", id="bare-hex"),
        pytest.param(f"# c\n{LINE_A[len(KEY_PREFIX) :]}", "line 2: expected", id="no-prefix"),
        pytest.param("p2pcc-key-v2:" + LINE_A[13:], "line 1: expected", id="future-version"),
        pytest.param(LINE_A[:-2], "line 1: the key is not valid base64", id="bad-padding"),
        pytest.param(LINE_A[:20] + "!" + LINE_A[21:], "not valid base64", id="bad-character"),
        pytest.param(LINE_A[:20] + " " + LINE_A[20:], "not valid base64", id="inner-space"),
        pytest.param(LINE_A[:20] + "é" + LINE_A[21:], "not valid base64", id="non-ascii"),
        pytest.param(
            format_key_line(b"k" * (limits.MIN_KEY_BYTES - 1)),
            "line 1: key of 15 bytes, at least 16 needed",
            id="short-key",
        ),
        pytest.param(
            "\n".join([LINE_A] * (limits.MAX_KEYS + 1)), "9 keys, at most 8", id="too-many"
        ),
    ],
)
def test_bad_key_files_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_key_file(text, "/etc/p2pcc/cluster.key")
    error = raised.value
    assert (error.path, error.key) == ("/etc/p2pcc/cluster.key", "key")
    assert message in error.reason
    # The reason may be logged: it must never carry key material.
    assert LINE_A[len(KEY_PREFIX) : len(KEY_PREFIX) + 12] not in str(error)
    assert KEY_A.hex()[:12] not in str(error)


def test_a_bad_line_error_says_how_to_fix_it() -> None:
    with pytest.raises(ConfigError, match="run `p2pcc keygen`"):
        parse_key_file("hunter2\n", "key")


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_config_error(text: str) -> None:
    try:
        keyring = parse_key_file(text, "k")
    except ConfigError:
        return
    assert 1 <= len(keyring) <= limits.MAX_KEYS


def test_key_line_uses_the_standard_base64_alphabet() -> None:
    key = b"\xfb\xff" * 9  # bytes that encode to "+" and "/" in the standard alphabet
    line = format_key_line(key)
    assert line == KEY_PREFIX + base64.b64encode(key).decode()
    assert "+" in line
    assert "/" in line
    assert parse_key_file(line, "k").keys == (key,)
