"""Projects built by their own build systems in the office's client: autotools, CMake + Ninja.

tests/integration/project.py compiles a project with a Makefile the tests write; here the
build system decides what to run, as for a user:

* autotools: libsodium as PyNaCl's sdist bundles it, with its generated `configure`
  (no autoconf needed): `./configure && make -jN` with the links first in PATH, so both
  configure's probes and libtool's compiles reach the links as plain `gcc`.  Static
  and minimal (`--disable-shared --enable-minimal`): 85 objects, each compiled once.
* CMake + Ninja: Ninja (C++) as the `ninja` package's sdist bundles it, configured by
  its own upstream CMakeLists.txt (`ninja-upstream/`): 27 sources in an object
  library, the two re2c lexers in another (pre-generated: no re2c needed), `ninja.cc`
  and `browse.cc` (with a header CMake generates) in the executable; its compiler
  probes, `check_ipo_supported` and `check_cxx_compiler_flag` run as CMake runs them.
  Built RelWithDebInfo (`-O2 -g`, no LTO: CMake enables that for Release only),
  without its tests (`BUILD_TESTING=OFF`, CTest's switch).  CMake runs with
  `CXX=g++` and the links first in PATH and records the links' absolute paths as
  CMAKE_CXX_COMPILER (and `cc`'s as CMAKE_C_COMPILER: the project enables C, but
  compiles no C file on Linux); the builds then run `p2pcc build ninja` or plain
  `ninja`.

Every command runs in the client's namespaces through `sh -c 'cd TREE && …'` (entering
a mount namespace starts in its root directory), under `timeout`.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from tests.integration import project
from tests.integration.office import BUILD_TIMEOUT, Build, Office, build_env
from tests.integration.pool import cli_env

#: Where CMake builds, inside the unpacked Ninja tree.
CMAKE_BUILD = "build"
#: How the tests configure Ninja: for Ninja, optimised with debug information, no tests.
CMAKE_CONFIGURE = (
    f"cmake -G Ninja -S . -B {CMAKE_BUILD} -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF"
)
#: The objects a build of that configuration compiles.
CMAKE_OBJECTS = 31


def unpack_sdist(office: Office, built: project.Project) -> Path:
    """A fresh tree of `built` (libsodium, Ninja), as its sdist has it, in the office's
    directory."""
    office.builds += 1
    return project.extract(built, office.base / f"build-{office.builds}")


def environment(office: Office, links: Path | None, **extra: str) -> dict[str, str]:
    """A new build's environment (office.build_env): links first in PATH unless None, a
    distcc log and a DISTCC_DIR of its own."""
    office.builds += 1
    env = build_env(links, office.base / f"distcc-dir-{office.builds}")
    env.update(DISTCC_LOG=str(office.base / f"distcc-{office.builds}.log"), **extra)
    return env


def run_in(office: Office, tree: Path, script: str, env: dict[str, str]) -> Build:
    """`sh -c 'cd TREE && SCRIPT'` in the client, in a session of its own (one build, as
    the wrapper counts builds for its warning); how it went and how long it took."""
    argv = ["timeout", "-k", "5", str(BUILD_TIMEOUT), "sh", "-c"]
    argv.append(f"cd {shlex.quote(str(tree))} && {script}")
    started = time.monotonic()
    result = office.client.ws.run(
        argv, env=env, check=False, timeout=BUILD_TIMEOUT + 30, start_new_session=True
    )
    seconds = time.monotonic() - started
    print(f"\n{script} in {tree.relative_to(office.base).parts[0]}: {seconds:.1f} s")
    log = Path(env["DISTCC_LOG"])
    return Build(result.returncode, result.stdout, result.stderr, seconds, log)


def messages(build: Build) -> list[str]:
    """p2pcc's lines in a build's output: on stderr, or on stdout, where ninja prints
    what its commands wrote."""
    return [
        line for line in (build.stderr + build.stdout).splitlines() if line.startswith("p2pcc: ")
    ]


def p2pcc_build(office: Office, compiler: str, command: str) -> str:
    """The shell words of `p2pcc build --compiler COMPILER COMMAND` with the client's
    configuration and links."""
    words = [sys.executable, "-m", "p2pcc", "build", "--config", str(office.client.config_path)]
    words += ["--links", str(office.links), "--compiler", compiler]
    return f"{shlex.join(words)} {command}"


def p2pcc_env(office: Office, env: dict[str, str]) -> dict[str, str]:
    """`env` for a build that runs the p2pcc CLI: with the bed's shared cache."""
    return env | {"P2PCC_CACHE_DIR": cli_env(office.client.home)["P2PCC_CACHE_DIR"]}


def cmake_cache(tree: Path) -> dict[str, str]:
    """CMakeCache.txt's entries, by name without the type."""
    entries = {}
    for line in (tree / CMAKE_BUILD / "CMakeCache.txt").read_text().splitlines():
        if line and not line.startswith(("#", "//")) and "=" in line:
            key, value = line.split("=", 1)
            entries[key.split(":", 1)[0]] = value
    return entries


def assert_objects_match(build: Build, built: Path, reference: Path, *, at_least: int) -> None:
    """The build succeeded, and its objects (libtool's and CMake's included, found
    anywhere under `built`) are the reference build's, at least `at_least` of them."""
    assert build.returncode == 0, build.explain()
    names = set(project.objects(built))
    assert len(names) >= at_least, sorted(names)
    assert names == set(project.objects(reference))
    differing = project.differing_objects(built, reference)
    assert differing == [], differing
