"""The wrapper with the real gcc, distcc and a distccd on loopback: what a peer builds is
byte for byte what this machine builds, `-march=native` included.

The state file is written from the daemon's own code (real fingerprints, real checked
`-march=native` expansions) with a hosts line naming only the loopback distccd, so every
distributed job must reach it: DISTCC_FALLBACK=0 turns a silent local fallback into a
failure, a fresh DISTCC_DIR keeps other tests' back-off away, and distccd's log shows
every job it compiled.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from p2pcc import cli
from p2pcc.compilers.probe import lookup
from tests.wrapper.loopback import Distccd, loopback_distccd, write_real_state

pytestmark = pytest.mark.integration

C_SOURCE = """
#include <stddef.h>
void saxpy(float *restrict y, const float *restrict x, float a, size_t n)
{ for (size_t i = 0; i < n; i++) y[i] += a * x[i]; }
double dot(const double *a, const double *b, size_t n)
{ double s = 0; for (size_t i = 0; i < n; i++) s += a[i] * b[i]; return s; }
unsigned bits(unsigned long v) { return (unsigned)__builtin_popcountl(v); }
"""

CXX_SOURCE = """
#include <algorithm>
#include <numeric>
#include <vector>
double total(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return std::accumulate(v.begin(), v.end(), 0.0);
}
"""


@dataclass
class Setup:
    """Links, a state file naming only the loopback distccd, and the environment."""

    work: Path
    distccd: Distccd
    env: dict[str, str]

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["timeout", "60", *command],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )

    def local(self, compiler: str, *args: str) -> None:
        """The same command run by the real compiler, without p2pcc or distcc."""
        done = subprocess.run(
            [f"/usr/bin/{compiler}", *args], cwd=self.work, capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr


@pytest.fixture
def setup(shared_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    if not (shutil.which("gcc") and shutil.which("g++")):
        pytest.skip("needs gcc and g++")
    with loopback_distccd(shared_tmp) as distccd:
        runtime = shared_tmp / "run"
        runtime.mkdir()
        base_env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(shared_tmp),
            "LC_ALL": "C",
            "P2PCC_CACHE_DIR": str(shared_tmp / "cache"),
        }
        # A state file that lives as long as the test: state_max_age is set high.
        write_real_state(runtime / "state", distccd.host, base_env)
        config = shared_tmp / "p2pcc.toml"
        config.write_text(f'runtime_dir = "{runtime}"\n[wrapper]\nstate_max_age = 3600.0\n')
        monkeypatch.setenv("PATH", "/usr/bin:/bin")
        links = shared_tmp / "links"
        assert cli.main(["install-links", str(links), "--config", str(config)]) == 0
        (shared_tmp / "distcc-dir").mkdir()
        env = base_env | {
            "PATH": f"{links}:/usr/bin:/bin",
            "DISTCC_DIR": str(shared_tmp / "distcc-dir"),
            "DISTCC_FALLBACK": "0",
            "XDG_RUNTIME_DIR": str(shared_tmp),
        }
        work = shared_tmp / "work"
        work.mkdir()
        (work / "v.c").write_text(C_SOURCE)
        (work / "t.cc").write_text(CXX_SOURCE)
        yield Setup(work, distccd, env)


def test_a_march_native_object_built_by_the_peer_is_byte_identical(setup: Setup) -> None:
    command = ["-O3", "-march=native", "-c", "v.c"]
    done = setup.run("gcc", *command, "-o", "remote.o")
    assert done.returncode == 0, done.stderr
    [job] = setup.distccd.wait_for_jobs(1)
    remote_name = lookup("gcc", setup.env | {"PATH": "/usr/bin:/bin"}).remote_name
    assert job.endswith(f" {remote_name} v.c")  # compiled by the peer's gcc, by that name
    setup.local("gcc", *command, "-o", "local.o")
    setup.local("gcc", "-O3", "-c", "v.c", "-o", "generic.o")
    remote = (setup.work / "remote.o").read_bytes()
    assert remote == (setup.work / "local.o").read_bytes()
    assert remote != (setup.work / "generic.o").read_bytes()  # the CPU flags mattered


def test_a_debug_cxx_object_matches_after_stripping_debug_info(setup: Setup) -> None:
    command = ["-O2", "-g", "-march=native", "-mtune=native", "-c", "t.cc"]
    done = setup.run("c++", *command, "-o", "remote.o")
    assert done.returncode == 0, done.stderr
    assert len(setup.distccd.wait_for_jobs(1)) == 1
    setup.local("c++", *command, "-o", "local.o")
    for name in ("remote.o", "local.o"):
        subprocess.run(["objcopy", "--strip-debug", name], cwd=setup.work, check=True)
    assert (setup.work / "remote.o").read_bytes() == (setup.work / "local.o").read_bytes()


def test_plain_compiles_go_remote_and_link_steps_stay_here(setup: Setup) -> None:
    assert setup.run("cc", "-O2", "-c", "v.c", "-o", "v.o").returncode == 0
    assert len(setup.distccd.wait_for_jobs(1)) == 1
    setup.local("cc", "-O2", "-c", "v.c", "-o", "local.o")
    comments = [
        subprocess.run(
            ["readelf", "-p", ".comment", name],
            cwd=setup.work,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.replace(name, "")
        for name in ("v.o", "local.o")
    ]
    assert "GCC:" in comments[0]
    assert comments[0] == comments[1]  # the peer's compiler is this one
    done = setup.run("cc", "-shared", "v.o", "-o", "libv.so")
    assert done.returncode == 0, done.stderr
    assert (setup.work / "libv.so").exists()
    # One more remote job after the link: its line is the second, so the link made none.
    assert setup.run("cc", "-O1", "-c", "v.c", "-o", "w.o").returncode == 0
    jobs = setup.distccd.wait_for_jobs(2)
    assert len(jobs) == 2
    assert all(line.endswith(" v.c") for line in jobs)


def test_a_compile_error_comes_back_with_the_compilers_status(setup: Setup) -> None:
    (setup.work / "bad.c").write_text("int f(void) { return undeclared; }\n")
    done = setup.run("gcc", "-c", "bad.c", "-o", "bad.o")
    assert done.returncode == 1
    assert "undeclared" in done.stderr
    assert not (setup.work / "bad.o").exists()
