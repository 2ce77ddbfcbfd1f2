"""Finding and reading the configuration file, and discovering machine defaults."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from p2pcc import paths
from p2pcc.config import discover_host_defaults, load_config
from p2pcc.config.host import SYSTEM_STATE_DIR, fit_node_name
from p2pcc.core.errors import ConfigError


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The four places a config can come from, all under tmp_path and none existing yet."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    system = tmp_path / "etc" / "p2pcc.toml"
    monkeypatch.setattr(paths, "SYSTEM_CONFIG", system)
    return {
        "explicit": tmp_path / "explicit.toml",
        "env": tmp_path / "env.toml",
        "user": tmp_path / "xdg" / "p2pcc" / "p2pcc.toml",
        "system": system,
    }


def write_named(path: Path, name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[node]\nname = "{name}"\n')


def test_the_first_existing_file_in_search_order_wins(places: dict[str, Path]) -> None:
    for name, path in places.items():
        write_named(path, name)
    env = {"P2PCC_CONFIG": str(places["env"])}
    assert load_config(str(places["explicit"]), env).node.name == "explicit"
    assert load_config(None, env).node.name == "env"
    assert load_config(None, {}).node.name == "user"
    places["user"].unlink()
    system = load_config(None, {})
    assert (system.node.name, system.source) == ("system", places["system"])
    places["system"].unlink()
    assert load_config(None, {}).source is None


def test_no_file_anywhere_gives_defaults(places: dict[str, Path]) -> None:
    config = load_config(None, {})
    assert config.source is None
    assert config.gossip.port == 3634


@pytest.mark.parametrize(("how", "named_by"), [("explicit", "--config"), ("env", "P2PCC_CONFIG")])
def test_a_named_file_that_does_not_exist_is_an_error(
    places: dict[str, Path], how: str, named_by: str
) -> None:
    write_named(places["user"], "user")  # must not be used instead
    missing = places[how]
    explicit = str(missing) if how == "explicit" else None
    env = {} if how == "explicit" else {"P2PCC_CONFIG": str(missing)}
    with pytest.raises(ConfigError) as caught:
        load_config(explicit, env)
    assert str(caught.value) == (
        f"{missing}: cannot read: No such file or directory (named by {named_by})"
    )


def test_a_found_file_that_cannot_be_read_is_an_error_not_skipped(
    places: dict[str, Path],
) -> None:
    places["user"].mkdir(parents=True)
    write_named(places["system"], "system")
    with pytest.raises(ConfigError) as caught:
        load_config(None, {})
    assert str(caught.value) == f"{places['user']}: cannot read: Is a directory"


def test_invalid_utf8_names_the_position(places: dict[str, Path]) -> None:
    places["explicit"].write_bytes(b'[node]\nname = "w\xffs"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(str(places["explicit"]), {})
    assert str(caught.value) == f"{places['explicit']}: line 2, column 10: not valid UTF-8"


def test_a_byte_order_mark_is_tolerated(places: dict[str, Path]) -> None:
    places["explicit"].write_bytes(b'\xef\xbb\xbf[node]\nname = "bom"\n')
    assert load_config(str(places["explicit"]), {}).node.name == "bom"


def test_errors_name_the_file_that_was_read(places: dict[str, Path]) -> None:
    places["system"].parent.mkdir()
    places["system"].write_text("[gossip]\nport = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(None, {})
    assert str(caught.value) == (
        f"{places['system']}: gossip.port: expected an integer from 1 to 65535, got 0"
    )


def test_the_runtime_dir_environment_variable_beats_the_file(
    places: dict[str, Path], tmp_path: Path
) -> None:
    places["explicit"].write_text('runtime_dir = "/srv/p2pcc"\n')
    env = {"P2PCC_RUNTIME_DIR": str(tmp_path / "run")}
    assert load_config(str(places["explicit"]), env).runtime_dir == tmp_path / "run"
    assert load_config(str(places["explicit"]), {}).runtime_dir == Path("/srv/p2pcc")


# --- machine defaults ------------------------------------------------------------------------


def test_distccd_is_found_on_the_given_path(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "bin").mkdir()
    distccd = tmp_path / "bin" / "distccd"
    distccd.write_text("#!/bin/sh\n")
    distccd.chmod(distccd.stat().st_mode | stat.S_IXUSR)
    assert discover_host_defaults({"PATH": str(tmp_path / "bin")}).distccd_found is True
    assert discover_host_defaults({"PATH": str(tmp_path / "empty")}).distccd_found is False


def test_home_and_runtime_override_come_from_the_environment(tmp_path: Path) -> None:
    host = discover_host_defaults({"HOME": "/home/ann", "P2PCC_RUNTIME_DIR": str(tmp_path)})
    assert (host.home, host.runtime_dir_override) == (Path("/home/ann"), tmp_path)
    # The default the file can override ignores the environment override.
    assert host.runtime_dir == paths.runtime_dir({})


def test_the_state_dir_is_system_wide_for_root_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    expected = SYSTEM_STATE_DIR if os.geteuid() == 0 else tmp_path / "state" / "p2pcc"
    assert discover_host_defaults({}).state_dir == expected


@pytest.mark.parametrize(
    ("hostname", "name"),
    [
        ("ws1.example.org", "ws1.example.org"),
        ("", "localhost"),
        ("a\nb", "ab"),
        ("x" * 70, "x" * 64),
        ("é" * 40, "é" * 32),
        ("x" + "é" * 40, "x" + "é" * 31),  # never cut inside a character
    ],
)
def test_the_hostname_is_fitted_into_a_valid_node_name(hostname: str, name: str) -> None:
    assert fit_node_name(hostname) == name
