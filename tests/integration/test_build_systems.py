"""Real build systems end to end through the p2pcc links (issue 16, deliverable 2).

The office of test_real_builds (tests/integration/office.py), but the projects are built
by their own build systems (tests/integration/build_systems.py): libsodium's autotools
`./configure && make -jN`, and Ninja's C++ sources configured by their upstream
CMakeLists.txt for the Ninja generator and built with `p2pcc build ninja`.  Each build is
compared object by object with a local build by the real compiler; the builds through
the links run with DISTCC_FALLBACK=0, and each distccd's log says which workstation
compiled what: jobs on the gcc-12 peers (`peer12`, and `mixed` under the versioned
name), none on `pure11`, whose every name runs gcc-11.  Then the client's daemon stops
and CMake's build runs again with the compiler it recorded, the link's absolute path:
compiled locally, the same objects, one warning.

Run with `-s` to see build times.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from p2pcc import statefile
from tests.integration import project
from tests.integration.build_systems import (
    CMAKE_BUILD,
    CMAKE_CONFIGURE,
    CMAKE_OBJECTS,
    assert_objects_match,
    cmake_cache,
    environment,
    messages,
    p2pcc_build,
    p2pcc_env,
    run_in,
    unpack_sdist,
)
from tests.integration.distccd_jobs import assert_jobs_went
from tests.integration.office import (
    GCC12,
    GCC12_PEERS,
    GXX12,
    JOBS,
    LOCAL_JOBS,
    Office,
    fingerprint,
)
from tests.integration.project import LIBSODIUM, LIBSODIUM_CONFIGURE, NINJA

pytestmark = [pytest.mark.integration, pytest.mark.netns]

MISMATCHED = ("pure11",)
#: What libsodium's configure decided, as its top Makefile records it.
CONFIGURED = ("CC", "CPP", "CFLAGS", "CPPFLAGS", "DEFS", "LDFLAGS", "LIBS", "CWFLAGS")


def configured(tree: Path) -> dict[str, str]:
    """The variables of CONFIGURED as configure wrote them into the top Makefile."""
    text = (tree / "Makefile").read_text()
    found = {m[0]: m[1] for m in re.findall(r"^(\w+) = (.*)$", text, re.MULTILINE)}
    return {name: found[name] for name in CONFIGURED if name in found}


def assert_all_made_by_gcc12(tree: Path) -> None:
    """Every object of the local build that a compiler made names gcc 12 in its
    .comment (one assembled from a `.S` file, as libsodium's sandy2x, names none)."""
    for obj in project.objects(tree).values():
        comment = project.compiled_by(obj)
        assert comment == "" or re.search(r" 12\.\d+\.\d+$", comment), (obj, comment)


def test_autotools_configure_and_make_through_the_links(office: Office) -> None:
    """`./configure && make -j8` with the links first in PATH: configure decides what it
    decides without them, the compiles go to the gcc-12 peers only, and every libtool
    object is the local build's."""
    status = office.ready()
    reference = unpack_sdist(office, LIBSODIUM)
    env = environment(office, None)
    for step in (LIBSODIUM_CONFIGURE, f"make -j{LOCAL_JOBS}"):
        local = run_in(office, reference, step, env)
        assert local.returncode == 0, local.explain()
    assert_all_made_by_gcc12(reference)

    tree = unpack_sdist(office, LIBSODIUM)
    env = environment(office, office.links, DISTCC_FALLBACK="0")
    office.wait_in_line(fingerprint(status, "gcc"), GCC12_PEERS)
    marks = office.log_marks()
    configure = run_in(office, tree, LIBSODIUM_CONFIGURE, env)
    assert configure.returncode == 0, configure.explain()
    assert messages(configure) == []
    assert configured(tree) == configured(reference)
    assert configured(tree)["CC"] == "gcc"  # found on PATH: the link
    make = run_in(office, tree, f"make -j{JOBS}", env)
    assert_objects_match(make, tree, reference, at_least=80)
    assert messages(make) == []
    assert_jobs_went(office.jobs_since(marks), GCC12_PEERS, GCC12, not_to=MISMATCHED)


def test_cmake_ninja_cxx_through_the_links_and_with_the_daemon_down(office: Office) -> None:
    """Ninja configured by its upstream CMakeLists.txt with the links first in PATH
    records the g++ link's absolute path; `p2pcc build ninja` sends its C++ compiles to
    the g++-12 peers only; with the daemon stopped, a clean rebuild by plain ninja, the
    links no longer on PATH, still builds through the recorded path: locally, the same
    objects."""
    status = office.ready()
    reference = unpack_sdist(office, NINJA)
    env = environment(office, None, CXX="g++")
    for step in (CMAKE_CONFIGURE, f"ninja -C {CMAKE_BUILD} -j{LOCAL_JOBS}"):
        local = run_in(office, reference, step, env)
        assert local.returncode == 0, local.explain()
    assert_all_made_by_gcc12(reference)

    tree = unpack_sdist(office, NINJA)
    env = environment(office, office.links, CXX="g++", DISTCC_FALLBACK="0")
    cmake = run_in(office, tree, CMAKE_CONFIGURE, env)
    assert cmake.returncode == 0, cmake.explain()
    assert cmake_cache(tree)["CMAKE_CXX_COMPILER"] == str(office.links / "g++")
    office.wait_in_line(fingerprint(status, "g++"), GCC12_PEERS)
    marks = office.log_marks()  # after CMake's probes, some of which compile C with cc
    ninja = run_in(
        office, tree, p2pcc_build(office, "g++", f"ninja -C {CMAKE_BUILD}"), p2pcc_env(office, env)
    )
    assert_objects_match(ninja, tree, reference, at_least=CMAKE_OBJECTS)
    assert messages(ninja) == []
    assert_jobs_went(office.jobs_since(marks), GCC12_PEERS, GXX12, not_to=MISMATCHED)

    client = office.client
    assert client.process is not None
    client.process.send_signal(signal.SIGTERM)
    client.process.wait(timeout=30)
    assert not (client.runtime_dir / statefile.FILE_NAME).exists()
    env = environment(office, None)
    marks = office.log_marks()
    rebuild = run_in(
        office, tree, f"ninja -C {CMAKE_BUILD} -t clean && ninja -C {CMAKE_BUILD}", env
    )
    assert_objects_match(rebuild, tree, reference, at_least=CMAKE_OBJECTS)
    assert rebuild.stdout.count("Building CXX object") == CMAKE_OBJECTS  # all of it again
    assert len(messages(rebuild)) == 1, rebuild.stdout  # once per build, not per file
    assert "daemon" in messages(rebuild)[0]
    assert not any(office.jobs_since(marks).values())
