"""distccd's command line, allow list, whitelist check, back-off, exits and PATH."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core.distccd_args import (
    Backoff,
    WhitelistProblem,
    default_allow,
    distccd_argv,
    explain_exit,
    last_error,
    resolve_jobs,
    server_path,
    whitelist_problems,
)

LAN = ipaddress.ip_network("192.168.1.0/24")
V6 = ipaddress.ip_network("fd00:1::/64")


def argv(user: str | None, allow: tuple[object, ...] = (LAN, V6), jobs: int = 4) -> list[str]:
    return distccd_argv(
        "/usr/bin/distccd",
        listen="192.168.1.7",
        port=3632,
        allow=allow,  # type: ignore[arg-type]
        jobs=jobs,
        nice=10,
        log_file="/run/p2pcc/distccd/distccd.log",
        pid_file="/run/p2pcc/distccd/distccd.pid",
        user=user,
    )


def test_argv_as_root_drops_to_the_user() -> None:
    assert argv("distccd") == [
        "/usr/bin/distccd",
        "--daemon",
        "--no-detach",
        "--listen",
        "192.168.1.7",
        "--port",
        "3632",
        "--allow",
        "192.168.1.0/24",
        "--allow",
        "fd00:1::/64",
        "--jobs",
        "4",
        "--nice",
        "10",
        "--log-file",
        "/run/p2pcc/distccd/distccd.log",
        "--log-level",
        "info",
        "--pid-file",
        "/run/p2pcc/distccd/distccd.pid",
        "--user",
        "distccd",
    ]


def test_argv_unprivileged_names_no_user() -> None:
    assert "--user" not in argv(None)
    assert argv(None) == argv("distccd")[:-2]


@pytest.mark.parametrize(
    ("allow", "jobs", "user", "message"),
    [
        ((), 4, None, "at least one --allow"),
        ((LAN, ipaddress.ip_network("0.0.0.0/0")), 4, None, "/0"),
        ((ipaddress.ip_network("::/0"),), 4, None, "/0"),
        ((LAN,), 0, None, "at least one job slot"),
        ((LAN,), 4, "root", "root"),
    ],
)
def test_argv_refuses_unsafe_settings(
    allow: tuple[object, ...], jobs: int, user: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        argv(user, allow, jobs)


def test_default_allow_is_the_interface_subnets_in_order() -> None:
    addresses = [
        ipaddress.ip_interface("192.168.1.7/24"),
        ipaddress.ip_interface("fe80::1/64"),
        ipaddress.ip_interface("192.168.1.9/24"),  # second address, same subnet
        ipaddress.ip_interface("10.8.0.2/32"),
    ]
    assert default_allow(addresses) == (
        ipaddress.ip_network("192.168.1.0/24"),
        ipaddress.ip_network("fe80::/64"),
        ipaddress.ip_network("10.8.0.2/32"),
    )


def test_default_allow_takes_the_pools_other_networks_after_the_interfaces() -> None:
    addresses = [ipaddress.ip_interface("10.1.0.7/24")]
    pool = [ipaddress.ip_network("10.2.0.0/16"), ipaddress.ip_network("10.1.0.0/24")]
    assert default_allow(addresses, pool) == (
        ipaddress.ip_network("10.1.0.0/24"),
        ipaddress.ip_network("10.2.0.0/16"),
    )


def test_default_allow_never_yields_a_slash_zero() -> None:
    assert default_allow([ipaddress.ip_interface("10.0.0.1/0")]) == ()
    assert default_allow([]) == ()


@given(
    st.lists(
        st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(
            lambda t: ipaddress.ip_interface(f"{t[0]}/{t[1]}")
        )
    )
)
def test_default_allow_covers_every_address_but_slash_zero(addresses: list[object]) -> None:
    networks = default_allow(addresses)  # type: ignore[arg-type]
    assert all(network.prefixlen > 0 for network in networks)
    assert len(set(networks)) == len(networks)
    for address in addresses:
        if address.network.prefixlen > 0:  # type: ignore[attr-defined]
            assert any(address.ip in network for network in networks)  # type: ignore[attr-defined]


def test_jobs_follow_the_slots_when_not_configured() -> None:
    assert resolve_jobs(4, 12) == 4
    assert resolve_jobs(0, 12) == 12
    assert resolve_jobs(0, 0) == 1


def test_whitelist_problems_name_the_fix() -> None:
    entries = {"gcc-12", "x86_64-linux-gnu-gcc-12"}
    names = ["x86_64-linux-gnu-gcc-12", "x86_64-linux-gnu-clang-14", "x86_64-linux-gnu-clang-14"]
    problems = whitelist_problems(
        names, entries, directory="/usr/lib/distcc", link_target="../../bin/distcc"
    )
    assert problems == [
        WhitelistProblem(
            "x86_64-linux-gnu-clang-14",
            "x86_64-linux-gnu-clang-14 is not in distccd's compiler whitelist /usr/lib/distcc, "
            "so peers' jobs for it would fail: run `update-distcc-symlinks` as root (it lists "
            "the compilers it finds in /usr/bin), or add it: "
            "`ln -s ../../bin/distcc /usr/lib/distcc/x86_64-linux-gnu-clang-14`",
        )
    ]


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(initial=1.0, maximum=10.0, reset_after=60.0)
    delays = []
    now = 0.0
    for _ in range(7):
        backoff.started(now)
        now += 1.0  # died one second after each start
        delays.append(backoff.failed(now))
        now += delays[-1]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_backoff_starts_over_after_a_long_run() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, reset_after=60.0)
    backoff.started(0.0)
    assert [backoff.failed(1.0), backoff.failed(2.0), backoff.failed(3.0)] == [0.5, 1.0, 2.0]
    backoff.started(10.0)
    assert backoff.failed(69.9) == 4.0  # 59.9 s up: not long enough
    backoff.started(100.0)
    assert backoff.failed(160.0) == 0.5


@given(st.lists(st.floats(0, 200), max_size=40))
def test_backoff_stays_within_bounds(uptimes: list[float]) -> None:
    backoff = Backoff(initial=0.2, maximum=7.0, reset_after=50.0, factor=3.0)
    now = 0.0
    previous = 0.0
    for uptime in uptimes:
        backoff.started(now)
        now += uptime
        delay = backoff.failed(now)
        assert 0.2 <= delay <= 7.0
        if uptime < 50.0:
            assert delay >= previous  # without a long run, delays never shrink
        previous = delay
        now += delay


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=5.0, maximum=1.0, reset_after=10.0)


def test_exit_statuses_in_words() -> None:
    assert explain_exit(102).startswith("status 102: could not listen on its port")
    assert explain_exit(-9) == "killed by signal 9"
    assert explain_exit(3) == "status 3"


LOG = (
    "distccd[382] (dcc_setup_daemon_path) daemon's PATH is /usr/bin:/bin\n"
    'distccd[390] (dcc_r_token_int) ERROR: read failed while waiting for token "DIST"\n'
    "distccd[382] (dcc_listen_by_addr) ERROR: bind of 127.0.0.1:39998 failed: "
    "Address already in use\n"
    "distccd[382] (dcc_exit) exit: code 102; self: 0.000000 user 0.005125 sys\n"
)


def test_last_error_is_the_main_process_own() -> None:
    assert last_error(LOG, 382) == "bind of 127.0.0.1:39998 failed: Address already in use"
    assert last_error(LOG, 390) == 'read failed while waiting for token "DIST"'
    assert last_error(LOG, 1) is None
    assert last_error("distccd[7] (f) CRITICAL! not in whitelist\n", 7) == "not in whitelist"


def test_server_path_drops_masquerades_and_relative_entries() -> None:
    path = "/usr/lib/distcc:/home/ann/bin:.::/usr/local/bin/:/usr/bin:/opt/p2pcc/wrap:/usr/bin"
    assert (
        server_path(path, {"/usr/lib/distcc", "/opt/p2pcc/wrap/"})
        == "/home/ann/bin:/usr/local/bin:/usr/bin"
    )
