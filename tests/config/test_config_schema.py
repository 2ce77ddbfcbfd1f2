"""Validation of configuration documents: defaults, every key's error, typos, relations."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

import pytest

from p2pcc.config import (
    CompilersConfig,
    Config,
    DistccdConfig,
    GossipConfig,
    HostDefaults,
    IdleConfig,
    MetricsConfig,
    NodeConfig,
    ProofsConfig,
    RankingConfig,
    WrapperConfig,
    config_from_mapping,
    parse_config,
)
from p2pcc.config.model import SECTIONS
from p2pcc.config.schema import CombinedConfigError, schema
from p2pcc.core.errors import ConfigError
from p2pcc.core.seeds import Seed

PATH = "/etc/p2pcc/p2pcc.toml"
HOST = HostDefaults(
    hostname="ws1",
    home=Path("/home/ann"),
    distccd_found=True,
    runtime_dir=Path("/run/user/1000/p2pcc"),
    runtime_dir_override=None,
    state_dir=Path("/home/ann/.local/state/p2pcc"),
    config_dir=Path("/home/ann/.config/p2pcc"),
)


def parse(text: str, host: HostDefaults = HOST) -> Config:
    return parse_config(text, PATH, host=host)


def error_for(text: str, host: HostDefaults = HOST) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, host)
    return str(caught.value)


def test_an_empty_document_gives_every_default() -> None:
    assert config_from_mapping({}, None, host=HOST) == Config(
        runtime_dir=Path("/run/user/1000/p2pcc"),
        node=NodeConfig(name="ws1", id_file=Path("/home/ann/.local/state/p2pcc/node-id")),
        gossip=GossipConfig(
            interface="",
            group=ipaddress.IPv4Address("239.192.74.70"),
            port=3634,
            ttl=1,
            interval=2.0,
            key_file=Path("/home/ann/.config/p2pcc/cluster.key"),
            insecure=False,
            suspect_after=5.0,
            dead_after=15.0,
            forget_after=600.0,
            seeds=(),
            networks=(),
        ),
        distccd=DistccdConfig(
            manage=True,
            port=3632,
            allow=(),
            allow_stock_clients=(),
            jobs=0,
            nice=10,
            user="distccd",
        ),
        metrics=MetricsConfig(job_memory=2**30, refresh=1.5),
        ranking=RankingConfig(tier_ratio=0.8, local_weight=0.5, lzo=False, max_hosts=16),
        wrapper=WrapperConfig(state_max_age=10.0, distcc="distcc"),
        compilers=CompilersConfig(offer=("cc", "c++", "gcc", "g++", "clang", "clang++"), extra=()),
        proofs=ProofsConfig(enabled=True),
        idle=IdleConfig(
            enabled=False, source="both", active_within=60.0, resume_after=300.0, hand_back=True
        ),
        source=None,
    )


def test_a_parsed_file_is_its_source() -> None:
    assert parse("").source == Path(PATH)


def test_distccd_is_not_managed_by_default_when_it_is_not_installed() -> None:
    assert parse("", replace(HOST, distccd_found=False)).distccd.manage is False


def test_every_key_set_in_a_file_is_used() -> None:
    config = parse(
        """
        runtime_dir = "/srv/p2pcc"
        [node]
        name = "büro-7"
        id_file = "~/p2pcc/id"
        [gossip]
        interface = "enp3s0"
        group = "ff02::7063"
        port = 4000
        ttl = 4
        interval = 1
        key_file = "/etc/p2pcc/key"
        suspect_after = 3
        dead_after = 9.5
        forget_after = 60
        seeds = ["build1.example.org", "[fd00::5]:3700"]
        networks = ["fd00:2::/48"]
        [distccd]
        manage = false
        port = 3700
        allow = ["192.168.1.7/24", "fd00::/8"]
        jobs = 12
        nice = 0
        user = "nobody"
        [metrics]
        job_memory = "512MiB"
        refresh = 0.5
        [ranking]
        tier_ratio = 1
        local_weight = 2
        lzo = true
        max_hosts = 1
        [wrapper]
        state_max_age = 2.5
        distcc = "/usr/local/bin/distcc"
        [compilers]
        offer = ["gcc-12"]
        extra = ["/opt/cross/bin/arm-none-eabi-gcc"]
        [idle]
        enabled = true
        source = "input"
        active_within = 5
        resume_after = 5
        hand_back = false
        """
    )
    assert config.runtime_dir == Path("/srv/p2pcc")
    assert config.node == NodeConfig(name="büro-7", id_file=Path("/home/ann/p2pcc/id"))
    assert config.gossip == GossipConfig(
        interface="enp3s0",
        group=ipaddress.IPv6Address("ff02::7063"),
        port=4000,
        ttl=4,
        interval=1.0,
        key_file=Path("/etc/p2pcc/key"),
        insecure=False,
        suspect_after=3.0,
        dead_after=9.5,
        forget_after=60.0,
        seeds=(Seed("build1.example.org"), Seed("fd00::5", 3700)),
        networks=(ipaddress.ip_network("fd00:2::/48"),),
    )
    assert config.distccd == DistccdConfig(
        manage=False,
        port=3700,
        allow=(ipaddress.ip_network("192.168.1.0/24"), ipaddress.ip_network("fd00::/8")),
        allow_stock_clients=(),
        jobs=12,
        nice=0,
        user="nobody",
    )
    assert config.metrics == MetricsConfig(job_memory=512 * 2**20, refresh=0.5)
    assert config.ranking == RankingConfig(tier_ratio=1.0, local_weight=2.0, lzo=True, max_hosts=1)
    assert config.wrapper == WrapperConfig(state_max_age=2.5, distcc="/usr/local/bin/distcc")
    assert config.compilers == CompilersConfig(
        offer=("gcc-12",), extra=("/opt/cross/bin/arm-none-eabi-gcc",)
    )
    assert config.idle == IdleConfig(
        enabled=True, source="input", active_within=5.0, resume_after=5.0, hand_back=False
    )


def test_floats_are_floats_even_when_written_as_integers() -> None:
    gossip = parse("[gossip]\ninterval = 1\nsuspect_after = 3").gossip
    assert (type(gossip.interval), type(gossip.suspect_after)) == (float, float)


def test_the_schema_lists_exactly_the_dataclass_fields_in_order() -> None:
    keys = schema(HOST)
    assert list(keys) == list(SECTIONS)
    for name, cls in SECTIONS.items():
        assert list(keys[name]) == list(cls.__dataclass_fields__)


# --- runtime dir precedence ------------------------------------------------------------------


def test_runtime_dir_defaults_to_the_host_default() -> None:
    assert parse("").runtime_dir == Path("/run/user/1000/p2pcc")


def test_runtime_dir_in_the_file_beats_the_default() -> None:
    assert parse('runtime_dir = "/srv/p2pcc"').runtime_dir == Path("/srv/p2pcc")


def test_the_environment_beats_runtime_dir_in_the_file() -> None:
    host = replace(HOST, runtime_dir_override=Path("/tmp/p2pcc-test"))
    assert parse('runtime_dir = "/srv/p2pcc"', host).runtime_dir == Path("/tmp/p2pcc-test")
    assert parse("", host).runtime_dir == Path("/tmp/p2pcc-test")


def test_a_bad_runtime_dir_is_reported_even_when_the_environment_overrides_it() -> None:
    host = replace(HOST, runtime_dir_override=Path("/tmp/p2pcc-test"))
    assert error_for('runtime_dir = "run"', host) == (
        f'{PATH}: runtime_dir: expected an absolute path (or one starting with "~/"), got "run"'
    )


# --- one message per bad value ---------------------------------------------------------------

PORT = "expected an integer from 1 to 65535"
SECONDS = "expected a number of seconds greater than 0"
ABSOLUTE = 'expected an absolute path (or one starting with "~/")'
NAME = "expected a printable name of 1 to 64 UTF-8 bytes"
INTERFACE = (
    'expected an interface name of at most 15 bytes without "/" or spaces, '
    'or "" for the interface of the default route'
)
GROUP = "expected an IPv4 or IPv6 multicast address such as 239.192.74.70 or ff02::7063"
NETWORK = 'expected a network such as "192.168.1.0/24"'
EVERYONE = (
    "expected a network narrower than /0 (distccd would accept jobs, which run "
    "compiler commands, from any address)"
)
JOBS = "expected 0 (one job per slot) or an integer from 1 to 1024"
SIZE = 'expected a size in bytes greater than 0, such as 1073741824, "1GiB", "512MiB" or "2G"'
PROGRAM = "expected a program name to look up on PATH, or an absolute path"
USER = "expected a user name of 1 to 32 characters"
IDLE_SOURCE = 'expected one of "logind", "input", "both"'

BAD_VALUES = [
    ('runtime_dir = ""', f'runtime_dir: {ABSOLUTE}, got ""'),
    ('runtime_dir = "~user/run"', f'runtime_dir: {ABSOLUTE}, got "~user/run"'),
    ('[node]\nname = ""', f'node.name: {NAME}, got ""'),
    ('[node]\nname = "a\\tb"', f'node.name: {NAME}, got "a\\tb"'),
    (f'[node]\nname = "{"é" * 33}"', f'node.name: {NAME}, got "{"é" * 33}"'),
    ("[node]\nname = 7", f"node.name: {NAME}, got 7"),
    ('[node]\nid_file = "node-id"', f'node.id_file: {ABSOLUTE}, got "node-id"'),
    ('[gossip]\ninterface = "eth0/1"', f'gossip.interface: {INTERFACE}, got "eth0/1"'),
    (
        '[gossip]\ninterface = "abcdefghijklmnop"',
        f'gossip.interface: {INTERFACE}, got "abcdefghijklmnop"',
    ),
    ('[gossip]\ngroup = "10.1.2.3"', f'gossip.group: {GROUP}, got "10.1.2.3"'),
    ('[gossip]\ngroup = "239.1.2.300"', f'gossip.group: {GROUP}, got "239.1.2.300"'),
    ("[gossip]\ngroup = 4026531840", f"gossip.group: {GROUP}, got 4026531840"),
    (
        '[gossip]\ngroup = "ff01::1"',
        "gossip.group: expected a multicast address with a scope wider than interface-local, "
        'got "ff01::1"',
    ),
    ('[gossip]\nport = "abc"', f'gossip.port: {PORT}, got "abc"'),
    ("[gossip]\nport = 0", f"gossip.port: {PORT}, got 0"),
    ("[gossip]\nport = 65536", f"gossip.port: {PORT}, got 65536"),
    ("[gossip]\nport = true", f"gossip.port: {PORT}, got true"),
    ("[gossip]\nport = 3634.0", f"gossip.port: {PORT}, got 3634.0"),
    ("[gossip]\nport = [3634]", f"gossip.port: {PORT}, got [3634]"),
    ("[gossip.port]\nx = 1", f"gossip.port: {PORT}, got a table"),
    ("[gossip]\nttl = 0", "gossip.ttl: expected an integer from 1 to 255, got 0"),
    ("[gossip]\nttl = 256", "gossip.ttl: expected an integer from 1 to 255, got 256"),
    ("[gossip]\ninterval = 0", f"gossip.interval: {SECONDS}, got 0"),
    ("[gossip]\ninterval = -1.5", f"gossip.interval: {SECONDS}, got -1.5"),
    ('[gossip]\ninterval = "2s"', f'gossip.interval: {SECONDS}, got "2s"'),
    ("[gossip]\ninterval = nan", f"gossip.interval: {SECONDS}, got nan"),
    ("[gossip]\ninterval = false", f"gossip.interval: {SECONDS}, got false"),
    ("[gossip]\ninterval = 1979-05-27", f"gossip.interval: {SECONDS}, got 1979-05-27"),
    (
        '[gossip]\nkey_file = "key"',
        'gossip.key_file: expected an absolute path, or "" for none, got "key"',
    ),
    ("[gossip]\nsuspect_after = 0", f"gossip.suspect_after: {SECONDS}, got 0"),
    ("[gossip]\ndead_after = -inf", f"gossip.dead_after: {SECONDS}, got -inf"),
    ("[gossip]\nforget_after = inf", f"gossip.forget_after: {SECONDS}, got inf"),
    ('[distccd]\nmanage = "yes"', 'distccd.manage: expected true or false, got "yes"'),
    ("[distccd]\nmanage = 1", "distccd.manage: expected true or false, got 1"),
    ("[distccd]\nport = 70000", f"distccd.port: {PORT}, got 70000"),
    (
        '[distccd]\nallow = "10.0.0.0/8"',
        'distccd.allow: expected a list of networks such as ["192.168.1.0/24"], got "10.0.0.0/8"',
    ),
    ('[distccd]\nallow = ["10.0.0.0/8", "lan"]', f'distccd.allow[1]: {NETWORK}, got "lan"'),
    ("[distccd]\nallow = [10]", f"distccd.allow[0]: {NETWORK}, got 10"),
    ('[distccd]\nallow = ["0.0.0.0/0"]', f'distccd.allow[0]: {EVERYONE}, got "0.0.0.0/0"'),
    ('[distccd]\nallow = ["::/0"]', f'distccd.allow[0]: {EVERYONE}, got "::/0"'),
    ('[distccd]\nallow = ["10.1.2.3/0"]', f'distccd.allow[0]: {EVERYONE}, got "10.1.2.3/0"'),
    ("[distccd]\njobs = -1", f"distccd.jobs: {JOBS}, got -1"),
    ("[distccd]\njobs = 1025", f"distccd.jobs: {JOBS}, got 1025"),
    ("[distccd]\nnice = 20", "distccd.nice: expected an integer from 0 to 19, got 20"),
    ("[distccd]\nnice = -1", "distccd.nice: expected an integer from 0 to 19, got -1"),
    ('[distccd]\nuser = ""', f'distccd.user: {USER}, got ""'),
    ('[distccd]\nuser = "dist ccd"', f'distccd.user: {USER}, got "dist ccd"'),
    (f'[distccd]\nuser = "{"u" * 33}"', f'distccd.user: {USER}, got "{"u" * 33}"'),
    ('[metrics]\njob_memory = "1 lightyear"', f'metrics.job_memory: {SIZE}, got "1 lightyear"'),
    ('[metrics]\njob_memory = "-1GiB"', f'metrics.job_memory: {SIZE}, got "-1GiB"'),
    ("[metrics]\njob_memory = -5", f"metrics.job_memory: {SIZE}, got -5"),
    ("[metrics]\njob_memory = 0", f"metrics.job_memory: {SIZE}, got 0"),
    ("[metrics]\njob_memory = 1.5", f"metrics.job_memory: {SIZE}, got 1.5"),
    ("[metrics]\nrefresh = 0", f"metrics.refresh: {SECONDS}, got 0"),
    (
        "[ranking]\ntier_ratio = 0",
        "ranking.tier_ratio: expected a number greater than 0 and at most 1, got 0",
    ),
    (
        "[ranking]\ntier_ratio = 1.5",
        "ranking.tier_ratio: expected a number greater than 0 and at most 1, got 1.5",
    ),
    (
        "[ranking]\nlocal_weight = 0",
        "ranking.local_weight: expected a number greater than 0, got 0",
    ),
    ('[ranking]\nlzo = "no"', 'ranking.lzo: expected true or false, got "no"'),
    ("[ranking]\nmax_hosts = 0", "ranking.max_hosts: expected an integer from 1 to 2048, got 0"),
    (
        "[ranking]\nmax_hosts = 2049",
        "ranking.max_hosts: expected an integer from 1 to 2048, got 2049",
    ),
    ("[wrapper]\nstate_max_age = 0", f"wrapper.state_max_age: {SECONDS}, got 0"),
    ('[wrapper]\ndistcc = ""', f'wrapper.distcc: {PROGRAM}, got ""'),
    ('[wrapper]\ndistcc = "bin/distcc"', f'wrapper.distcc: {PROGRAM}, got "bin/distcc"'),
    (
        '[compilers]\noffer = "gcc"',
        'compilers.offer: expected a list of compiler names or absolute paths, got "gcc"',
    ),
    ('[compilers]\noffer = ["gcc", 12]', f"compilers.offer[1]: {PROGRAM}, got 12"),
    (
        '[compilers]\noffer = ["gcc", "cc", "gcc"]',
        'compilers.offer[2]: expected each compiler listed once, got "gcc"',
    ),
    ('[compilers]\nextra = ["cross/gcc"]', f'compilers.extra[0]: {PROGRAM}, got "cross/gcc"'),
    ('[idle]\nenabled = "yes"', 'idle.enabled: expected true or false, got "yes"'),
    ('[idle]\nsource = "x11"', f'idle.source: {IDLE_SOURCE}, got "x11"'),
    ('[idle]\nsource = ["input"]', f'idle.source: {IDLE_SOURCE}, got ["input"]'),
    ("[idle]\nactive_within = 0", f"idle.active_within: {SECONDS}, got 0"),
    ("[idle]\nresume_after = -1", f"idle.resume_after: {SECONDS}, got -1"),
    ('[idle]\nhand_back = "no"', 'idle.hand_back: expected true or false, got "no"'),
    ("[idle]\nhand_back = 1", "idle.hand_back: expected true or false, got 1"),
]


@pytest.mark.parametrize(("text", "message"), BAD_VALUES)
def test_a_bad_value_names_the_file_the_key_and_what_is_expected(text: str, message: str) -> None:
    assert error_for(text) == f"{PATH}: {message}"


def test_the_error_carries_path_key_and_reason_separately() -> None:
    with pytest.raises(ConfigError) as caught:
        parse("[gossip]\nttl = 0")
    assert (caught.value.path, caught.value.key) == (PATH, "gossip.ttl")
    assert caught.value.reason == "expected an integer from 1 to 255, got 0"


# --- unknown names -------------------------------------------------------------------------

UNKNOWN = [
    ("[gossip]\nintervall = 3", "gossip.intervall: unknown key (did you mean gossip.interval?)"),
    ("[gosip]\nport = 1", "gosip: unknown section (did you mean gossip?)"),
    ("[gossip]\nmanage = true", "gossip.manage: unknown key (did you mean distccd.manage?)"),
    ("port = 1", "port: unknown key (did you mean gossip.port or distccd.port?)"),
    ('runtimedir = "/x"', "runtimedir: unknown key (did you mean runtime_dir?)"),
    (
        "colour = 1",
        "colour: unknown key (the only top-level key is runtime_dir; the rest go in sections)",
    ),
    (
        "[wrapper]\nzzz = 1",
        "wrapper.zzz: unknown key ([wrapper] has state_max_age, distcc)",
    ),
    (
        "[zzz]",
        "zzz: unknown section (the sections are node, gossip, distccd, metrics, ranking, "
        "wrapper, compilers, proofs, idle)",
    ),
    (
        "[gossip.tuning]\nfast = true",
        "gossip.tuning: unknown key ([gossip] has interface, group, "
        "port, ttl, interval, key_file, insecure, suspect_after, dead_after, forget_after, "
        "seeds, networks)",
    ),
    ("gossip = 5", "gossip: expected a table ([gossip]), got 5"),
]


@pytest.mark.parametrize(("text", "message"), UNKNOWN)
def test_unknown_names_are_errors_with_a_suggestion(text: str, message: str) -> None:
    assert error_for(text) == f"{PATH}: {message}"


def test_unknown_keys_are_reported_before_bad_values() -> None:
    # The typo is the likelier cause of the trouble, so it is what the user sees first.
    assert error_for("[gossip]\nport = 0\nprot = 1").splitlines() == [
        f"{PATH}: gossip.prot: unknown key (did you mean gossip.port?)",
        f"{PATH}: gossip.port: expected an integer from 1 to 65535, got 0",
    ]


def test_every_error_of_a_file_is_reported_once_naming_its_key() -> None:
    text = (
        "runtime_dir = 5\nnodes = 1\n[gossip]\ninterval = -1\nport = 70000\nbogus = 1\n"
        'suspect_after = "soon"\n[ranking]\ntier_ratio = 7\n[idle]\nsource = "both"\n'
    )
    with pytest.raises(CombinedConfigError) as caught:
        parse_config(text, PATH)
    assert [error.key for error in caught.value.errors] == [
        "nodes",
        "gossip.bogus",
        "runtime_dir",
        "gossip.port",
        "gossip.interval",
        "gossip.suspect_after",
        "ranking.tier_ratio",
    ]
    lines = str(caught.value).splitlines()
    assert len(lines) == 7
    assert all(line.startswith(f"{PATH}: ") for line in lines)
    assert (caught.value.path, caught.value.key) == (PATH, "nodes")  # the first, as one


def test_every_contradiction_is_reported() -> None:
    text = "[gossip]\ninterval = 20.0\n[idle]\nactive_within = 100.0\nresume_after = 50.0\n"
    assert [line.split(": ")[1] for line in error_for(text).splitlines()] == [
        "gossip.interval",
        "wrapper.state_max_age",
        "idle.resume_after",
    ]


# --- syntax ----------------------------------------------------------------------------------

SYNTAX = [
    ("[gossip]\nport = = 3\n", "line 2, column 8: Invalid value"),
    ("[node]\n[node]\n", "line 2, column 6: Cannot declare ('node',) twice"),
    ("[gossip]\nport = \n", "line 2, column 8: Invalid value"),
    ("[gossip]\nport = ", "line 2, column 8: Invalid value"),
]


@pytest.mark.parametrize(("text", "message"), SYNTAX)
def test_a_syntax_error_names_line_and_column(text: str, message: str) -> None:
    assert error_for(text) == f"{PATH}: {message}"


# --- relations between keys ------------------------------------------------------------------

RELATIONS = [
    (
        "[gossip]\ninterval = 6",
        "gossip.interval: expected less than gossip.suspect_after (5.0), got 6.0",
    ),
    (
        "[gossip]\nsuspect_after = 15",
        "gossip.suspect_after: expected less than gossip.dead_after (15.0), got 15.0",
    ),
    (
        "[gossip]\ndead_after = 900",
        "gossip.dead_after: expected less than gossip.forget_after (600.0), got 900.0",
    ),
    (
        "[wrapper]\nstate_max_age = 2",
        "wrapper.state_max_age: expected more than gossip.interval (2.0), got 2.0",
    ),
    (
        "[idle]\nactive_within = 400",
        "idle.resume_after: expected at least idle.active_within (400.0), got 300.0",
    ),
]


@pytest.mark.parametrize(("text", "message"), RELATIONS)
def test_contradicting_keys_are_named_together(text: str, message: str) -> None:
    assert error_for(text) == f"{PATH}: {message}"


def test_timeouts_may_move_together() -> None:
    gossip = parse(
        "[gossip]\ninterval = 10\nsuspect_after = 30\ndead_after = 90\nforget_after = 3600\n"
        "[wrapper]\nstate_max_age = 30"
    ).gossip
    assert (gossip.interval, gossip.forget_after) == (10.0, 3600.0)


def test_an_insecure_pool_with_a_key_is_a_contradiction() -> None:
    with pytest.raises(
        ConfigError, match=r"gossip\.insecure.*expected false when gossip\.key_file"
    ):
        config_from_mapping(
            {"gossip": {"insecure": True, "key_file": "/etc/p2pcc/key"}}, None, host=HOST
        )


def test_stock_clients_are_networks() -> None:
    config = config_from_mapping(
        {"distccd": {"allow_stock_clients": ["10.1.2.3", "fd00::/64"]}}, None, host=HOST
    )
    assert config.distccd.allow_stock_clients == (
        ipaddress.ip_network("10.1.2.3/32"),
        ipaddress.ip_network("fd00::/64"),
    )
    assert config_from_mapping({"gossip": {"insecure": True}}, None, host=HOST).gossip.insecure


def test_the_key_file_defaults_to_the_configuration_directory() -> None:
    gossip = config_from_mapping({}, None, host=HOST).gossip
    assert gossip.key_file == HOST.config_dir / "cluster.key"
    assert not gossip.insecure


def test_an_insecure_pool_reads_no_default_key() -> None:
    gossip = config_from_mapping({"gossip": {"insecure": True}}, None, host=HOST).gossip
    assert (gossip.key_file, gossip.insecure) == (None, True)
    explicit = {"gossip": {"insecure": True, "key_file": ""}}
    assert config_from_mapping(explicit, None, host=HOST).gossip.key_file is None


def test_an_empty_key_file_alone_is_valid_configuration() -> None:
    # The daemon refuses it (load_keyring); the file itself says what it means.
    gossip = config_from_mapping({"gossip": {"key_file": ""}}, None, host=HOST).gossip
    assert (gossip.key_file, gossip.insecure) == (None, False)
