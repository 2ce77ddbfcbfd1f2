"""Real projects built through the p2pcc links across namespace workstations (issue 4).

The office (tests/integration/office.py): a gcc-12 `client` with the links, a gcc-12
`peer12`, a `mixed` peer whose `gcc` is gcc-11 but which also offers its real gcc-12,
and a `pure11` peer on which every gcc name, `x86_64-linux-gnu-gcc-12` included, runs
gcc-11.  The projects are real third-party code from PyPI (tests/integration/project.py):
brotli's C library and fastText's C++ sources, built with `make -j8` and the links first
in PATH, then compared object by object (after `objcopy --strip-debug`) with a local
build by the real compiler.  Which workstation compiled what comes from each distccd's
log, which names the compiler the client asked for.  The builds that must go out run
with DISTCC_FALLBACK=0, so a job a peer failed fails the build instead of quietly
compiling locally.

One office serves the whole module; every test starts with `office.ready()`, which
restarts whatever an earlier test stopped or killed.  Run with `-s` to see build times.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from p2pcc import statefile
from tests.integration import project, workstation_compilers
from tests.integration.distccd_jobs import assert_jobs_went, kill_daemon_and_distccd, serving
from tests.integration.office import (
    GCC11,
    GCC11_PEERS,
    GCC12,
    GCC12_PEERS,
    GXX12,
    PEERS,
    QUICK,
    SLOWEST,
    STATE_MAX_AGE,
    Office,
    assert_same_objects,
    fingerprint,
    install_links,
    peer_entry,
)
from tests.integration.pool import wait_until
from tests.integration.project import Tree

pytestmark = [pytest.mark.integration, pytest.mark.netns]


# --- checking a build ----------------------------------------------------------------------


def assert_made_by(reference: Tree, version: str) -> None:
    """Every object of the local build names compiler `version` in its .comment."""
    for obj in project.objects(reference.path).values():
        assert project.compiled_by(obj).endswith(f" {version}"), obj


def compiler_version(name: str) -> str:
    return subprocess.run(
        [name, "-dumpfullversion"], capture_output=True, text=True, check=True
    ).stdout.strip()


# --- the tests -----------------------------------------------------------------------------


def test_each_workstation_runs_the_compilers_it_claims(office: Office) -> None:
    v12, v11 = compiler_version("gcc-12"), compiler_version("gcc-11")
    assert v12 != v11
    assert compiler_version("gcc") == v12  # the overlays stayed inside the bed
    c_names = ("gcc", "cc", "x86_64-linux-gnu-gcc", "gcc-12", GCC12)
    cxx_names = ("g++", "c++", "x86_64-linux-gnu-g++", "g++-12", GXX12)
    expected = {
        "client": [v12] * 5,
        "peer12": [v12] * 5,
        "mixed": [v11, v11, v11, v12, v12],
        "pure11": [v11] * 5,
    }
    for name, versions in expected.items():
        ws = office.daemons[name].ws
        assert list(workstation_compilers.versions(ws, c_names).values()) == versions, name
        assert list(workstation_compilers.versions(ws, cxx_names).values()) == versions, name


def test_each_peer_offers_what_it_really_has(office: Office) -> None:
    status = office.ready()
    gcc, gxx, gcc11 = (fingerprint(status, n) for n in ("gcc", "g++", "gcc-11"))
    offers = {p["name"]: set(p["compilers"]) for p in status["peers"]}
    assert {gcc, gxx} <= offers["peer12"]
    assert gcc11 not in offers["peer12"]
    assert {gcc, gxx, gcc11} <= offers["mixed"]
    assert gcc11 in offers["pure11"]
    assert not {gcc, gxx} & offers["pure11"]

    mixed = own_compilers(office, "mixed")
    assert mixed["gcc"]["fingerprint"] == gcc11 != gcc
    assert mixed[GCC12]["fingerprint"] == gcc
    assert mixed[GCC12]["remote_name"] == GCC12
    assert mixed[GXX12]["fingerprint"] == gxx
    assert mixed[GXX12]["remote_name"] == GXX12
    pure11 = own_compilers(office, "pure11")  # the lying names are seen through
    assert pure11[GCC12]["fingerprint"] == gcc11
    assert pure11[GCC12]["remote_name"] == GCC11


def own_compilers(office: Office, name: str) -> dict[str, dict[str, Any]]:
    """A workstation's compilers as its own daemon shows them, by each configured name."""
    status = office.daemons[name].status()
    assert status is not None
    return {n: c for c in status["node"]["compilers"] for n in c["names"]}


def test_hosts_lines_name_only_the_matching_peers(office: Office) -> None:
    office.ready()
    address = {name: office.daemons[name].ws.address for name in PEERS}
    for compiler, users, others in (
        ("gcc", ("peer12", "mixed"), ("pure11",)),
        ("g++", ("peer12", "mixed"), ("pure11",)),
        ("gcc-11", ("mixed", "pure11"), ("peer12",)),
    ):
        line = office.client.cli("hosts", compiler).stdout.strip()
        hosts = {word.split(":")[0] for word in line.split()}
        assert {address[n] for n in users} <= hosts, (compiler, line)
        assert not {address[n] for n in others} & hosts, (compiler, line)


@dataclass(frozen=True)
class Destination:
    """A build by `compiler` (really `real_name`): which peers must get its jobs, under
    which remote name, and which must get none."""

    tree_project: project.Project
    compiler: str
    real_name: str
    remote_name: str
    users: tuple[str, ...]
    others: tuple[str, ...]
    leave_out: tuple[str, ...] = ()


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            Destination(project.BROTLI, "gcc", "gcc-12", GCC12, GCC12_PEERS, ("pure11",)),
            id="c",
        ),
        pytest.param(
            Destination(project.FASTTEXT, "g++", "g++-12", GXX12, GCC12_PEERS, ("pure11",)),
            id="c++",
        ),
        pytest.param(
            Destination(
                project.BROTLI, "gcc-11", "gcc-11", GCC11, GCC11_PEERS, ("peer12",), SLOWEST
            ),
            id="gcc-11",
        ),
    ],
)
def test_a_build_goes_only_to_peers_with_exactly_its_compiler(
    office: Office, case: Destination
) -> None:
    """A real build through the links with DISTCC_FALLBACK=0: jobs on every peer that has
    exactly the client's compiler, under the name all of them run it by, none elsewhere,
    and every object the local build's."""
    status = office.ready()
    offers = {p["name"]: set(p["compilers"]) for p in status["peers"]}
    for name in case.others:  # so these must get none of the jobs
        assert fingerprint(status, case.compiler) not in offers[name], name
    reference = office.reference(case.tree_project, case.compiler, leave_out=case.leave_out)
    assert_made_by(reference, compiler_version(case.real_name))
    tree = office.fresh_tree(case.tree_project, leave_out=case.leave_out)
    office.wait_in_line(fingerprint(status, case.compiler), case.users)
    marks = office.log_marks()
    build = office.build(tree, case.compiler, links=office.links, DISTCC_FALLBACK="0")
    assert_same_objects(build, tree, reference)
    assert build.warnings() == []
    jobs = office.jobs_since(marks)
    assert_jobs_went(jobs, case.users, case.remote_name, not_to=case.others)


@pytest.mark.parametrize("how", ["stopped", "crashed"])
def test_build_with_the_daemon_down_compiles_locally(office: Office, how: str) -> None:
    office.ready()
    reference = office.reference(project.BROTLI, "gcc")
    client = office.client
    assert client.process is not None
    state_file = client.runtime_dir / statefile.FILE_NAME
    if how == "stopped":  # a clean stop removes the state file
        client.process.send_signal(signal.SIGTERM)
        client.process.wait(timeout=30)
        assert not state_file.exists()
    else:  # a crash leaves it behind, to go stale
        os.killpg(client.process.pid, signal.SIGKILL)
        client.process.wait(timeout=10)
        wait_until(lambda: _state_age(state_file) > STATE_MAX_AGE, 10, "a stale state file")
    tree = office.fresh_tree(project.BROTLI, only=QUICK)
    marks = office.log_marks()
    build = office.build(tree, "gcc", links=office.links)
    assert_same_objects(build, tree, reference)
    assert len(build.warnings()) == 1, build.stderr  # once per build, not once per file
    assert "daemon" in build.warnings()[0]
    assert not any(office.jobs_since(marks).values())


def _state_age(path: Path) -> float:
    state = statefile.read(str(path))
    assert state is not None, f"{path} disappeared"
    return time.time() - state[0]


def test_build_without_distcc_compiles_locally(office: Office) -> None:
    office.ready()
    reference = office.reference(project.BROTLI, "gcc")
    missing = "/nonexistent/p2pcc-test/distcc"
    config = office.base / "no-distcc.toml"
    text = office.client.config_path.read_text()
    assert "[wrapper]\n" in text
    config.write_text(text.replace("[wrapper]\n", f'[wrapper]\ndistcc = "{missing}"\n'))
    links = office.base / "links-without-distcc"
    install_links(office.client, links, config)
    tree = office.fresh_tree(project.BROTLI, only=QUICK)
    marks = office.log_marks()
    build = office.build(tree, "gcc", links=links)
    assert_same_objects(build, tree, reference)
    assert len(build.warnings()) == 1, build.stderr
    assert missing in build.warnings()[0]
    assert not any(office.jobs_since(marks).values())


def test_peer_killed_mid_build_still_builds(office: Office) -> None:
    office.ready()
    reference = office.reference(project.BROTLI, "gcc")
    victim = office.daemons["peer12"]
    tree = office.fresh_tree(project.BROTLI, leave_out=SLOWEST)
    marks = office.log_marks()
    make, finish = office.start_build(tree, "gcc", links=office.links)
    wait_until(lambda: serving(victim.ws) > 0 or make.poll() is not None, 60, "a job on peer12")
    assert make.poll() is None, "the build ended before peer12 got a job"
    kill_daemon_and_distccd(victim)
    build = finish()
    assert_same_objects(build, tree, reference)
    failed = [line for line in build.distcc_log.read_text().splitlines() if "failed" in line]
    print("distcc's failures after the kill:\n" + "\n".join(failed[:5]))
    jobs = office.jobs_since(marks)
    assert jobs["pure11"] == []


def test_a_paused_peer_gets_no_job_until_it_resumes(office: Office) -> None:
    """Issue 5's promise on a real build: `p2pcc pause` on a workstation, and a build
    started afterwards sends it nothing (its distccd log shows no job); resumed, it is
    listed again."""
    status = office.ready()
    peer12 = office.daemons["peer12"]
    peer12.cli("pause", "--for", "10m", "--reason", "meeting")
    state_path = str(office.client.runtime_dir / statefile.FILE_NAME)

    def peer12_unlisted() -> bool:
        state = statefile.read(state_path)
        return state is not None and all(
            f"{peer12.ws.address}:" not in line for _, line in state[1].values()
        )

    wait_until(peer12_unlisted, 5, "the client to drop the paused peer12")
    # The jobs must go to mixed, which ready() saw in some line, not necessarily gcc-12's.
    office.wait_in_line(fingerprint(status, "gcc"), ("mixed",))
    reference = office.reference(project.BROTLI, "gcc", leave_out=SLOWEST)
    tree = office.fresh_tree(project.BROTLI, leave_out=SLOWEST)
    marks = office.log_marks()
    build = office.build(tree, "gcc", links=office.links, DISTCC_FALLBACK="0")
    assert_same_objects(build, tree, reference)
    assert_jobs_went(office.jobs_since(marks), ("mixed",), GCC12, not_to=("peer12", "pure11"))
    peer12.cli("resume")
    office.ready()  # waits until every peer, peer12 included, is in a hosts line again


def hold_until_released(tree: Tree, limit: float = 120) -> Path:
    """Make `tree`'s build end only once the file returned exists (or after `limit`
    seconds): one more job of `all` waits for it beside the compiles.  brotli compiles
    in 8 s here when the machine is quiet, less than a pause and a resume take to reach
    the build's jobserver; a build following the pool must still run when they do."""
    release = tree.path / "release"
    waits = round(limit / 0.1)
    with (tree.path / "Makefile").open("a") as makefile:
        makefile.write(
            ".PHONY: held\nall: held\nheld:\n"
            f"\t@i=0; while [ ! -e {release} ] && [ $$i -lt {waits} ]; do"
            " sleep 0.1; i=$$((i+1)); done\n"
        )
    return release


def test_p2pcc_build_follows_a_peer_that_pauses_and_resumes_mid_build(office: Office) -> None:
    """Issue 14's live -j: `p2pcc build -v make` with no -j runs make under a jobserver
    sized by the pool.  peer12 pauses mid-build: the build's jobs shrink; it resumes:
    they grow again (each size is a line of -v); the objects are the local build's."""
    status = office.ready()
    reference = office.reference(project.BROTLI, "gcc")
    tree = office.fresh_tree(project.BROTLI)
    release = hold_until_released(tree)
    peer12 = office.daemons["peer12"]

    def peer12_offers_slots() -> bool:
        entry = peer_entry(office.client, "peer12")
        return entry is not None and entry["state"] == "active" and entry["slots"] > 0

    # Its pause must take slots away: after the module's earlier builds its load may
    # still hold them at none, or a verdict it out of the line, for a while.  mixed must
    # be in the line too: out as a straggler beside peer12, it would come back in when
    # peer12 leaves (the median of the line falls), and the size would not shrink.
    wait_until(peer12_offers_slots, 120, "peer12 to offer slots before the build")
    gcc12 = fingerprint(status, "gcc")
    office.wait_in_line(gcc12, GCC12_PEERS)
    make, finish = office.start_p2pcc_build(tree, "gcc")
    output = office.output_path
    lines: list[str] = []  # the client's gcc-12 line as each wait saw it change

    def sizes() -> list[int]:
        return [int(n) for n in re.findall(r"the pool takes (\d+) gcc job", output.read_text())]

    def seen(predicate: Callable[[list[int]], bool]) -> bool:
        line = office.hosts_line(gcc12)
        if not lines or lines[-1] != line:
            lines.append(line)
        return make.poll() is not None or (bool(sizes()) and predicate(sizes()))

    try:
        wait_until(lambda: seen(lambda s: True), 30, "the build's first size")
        first = sizes()[0]
        peer12.cli("pause", "--for", "10m", "--reason", "live -j test")
        wait_until(lambda: seen(lambda s: s[-1] < first), 30, "the jobs to shrink")
        peer12.cli("resume")
        wait_until(lambda: seen(lambda s: s[-1] > min(s)), 30, "the jobs to grow again")
        assert make.poll() is None, f"the build ended before the pool changed back: {sizes()}"
    except AssertionError:
        print(f"the build's sizes: {sizes()}; the client's gcc-12 lines:", *lines, sep="\n  ")
        office.explain()
        raise
    finally:
        release.touch()
        peer12.cli("resume", check=False)
    build = finish()
    print(f"the build's sizes, in order: {sizes()}")
    assert_same_objects(build, tree, reference)
    # The pool shrank from its first size and grew again after its lowest (later sizes
    # may dip once more, as the other peers' loads move while the build runs).
    low = min(sizes())
    assert sizes()[0] > low
    assert max(sizes()[sizes().index(low) :]) > low
