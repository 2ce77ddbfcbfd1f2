"""Real third-party C and C++ projects for build tests: sources from PyPI, our Makefile.

Each project is the source distribution of a package on PyPI that bundles a C or C++
library.  `fetch` downloads it once with `pip download --no-binary :all: --no-deps` into
a stable cache directory and checks it against a pinned SHA-256, so later runs are fast
and work offline, and a changed file on the registry fails loudly instead of silently
testing other code.  `unpack` extracts a fresh tree and writes the Makefile the tests
need: one pattern rule `$(CC) $(CFLAGS) -c` per object, `-O2 -g`, nothing else, so a
build is exactly "compile every source" and every object can be compared.

Objects of `-g` builds are compared after `objcopy --strip-debug`: a peer compiles in a
temporary directory of its own, so debug information differs even with the very same
compiler, while the code and data sections must not.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Project:
    """A library inside a PyPI sdist, and how to compile its sources."""

    requirement: str  # what pip downloads, pinned
    archive: str  # the file pip saves
    sha256: str  # of that file, as first downloaded for these tests
    top: str  # the directory inside the archive the build runs in
    sources: tuple[str, ...]  # glob patterns relative to `top`, compiled in this order
    language: str  # "c" or "c++"
    flags: str  # compile flags besides -O2 -g

    @property
    def compiler_variable(self) -> str:
        return "CC" if self.language == "c" else "CXX"


#: Google's brotli: 31 C files of its library under c/common, c/dec and c/enc.
BROTLI = Project(
    requirement="brotli==1.1.0",
    archive="Brotli-1.1.0.tar.gz",
    sha256="81de08ac11bcb85841e440c13611c00b67d3bf82698314928d0b676362546724",
    top="Brotli-1.1.0",
    sources=("c/common/*.c", "c/dec/*.c", "c/enc/*.c"),
    language="c",
    flags="-Ic/include",
)

#: Facebook's fastText: 14 C++17 files (templates, STL, threads), no dependencies.
FASTTEXT = Project(
    requirement="fasttext==0.9.3",
    archive="fasttext-0.9.3.tar.gz",
    sha256="eb03f2ef6340c6ac9e4398a30026f05471da99381b307aafe2f56e4cd26baaef",
    top="fasttext-0.9.3",
    sources=("src/*.cc",),
    language="c++",
    flags="-std=c++17 -pthread",
)

#: BoringSSL's libcrypto as grpcio's sdist bundles it: 234 C files (every `src/crypto`
#: directory, `fipsmodule/bcm.c` including its own sub-directories, and the generated
#: error table), include paths only.  About 48 CPU-seconds at -O2 -g with gcc-12 on the
#: 2-vCPU development VM (`bcm.c` alone 11): the scheduling benchmarks' project, the size
#: of the git `libgit.a` build issue 13 measured with (303 files, 85 CPU-seconds).
BORINGSSL = Project(
    requirement="grpcio==1.64.0",
    archive="grpcio-1.64.0.tar.gz",
    sha256="257baf07f53a571c215eebe9679c3058a313fd1d1f7c4eede5a8660108c52d9c",
    top="grpcio-1.64.0/third_party/boringssl-with-bazel",
    sources=("src/crypto/*.c", "src/crypto/*/*.c", "src/gen/crypto/*.c"),
    language="c",
    flags="-Isrc/include",
)

#: libsodium 1.0.18 as PyNaCl's sdist bundles it: built by its own autotools build (a
#: generated `configure`, no autoconf needed), not by our Makefile.
LIBSODIUM = Project(
    requirement="pynacl==1.5.0",
    archive="PyNaCl-1.5.0.tar.gz",
    sha256="8ac7448f09ab85811607bdd21ec2464495ac8b7c66d146bf545b0f08fb9220ba",
    top="PyNaCl-1.5.0/src/libsodium",
    sources=(),  # its Makefiles say what to compile
    language="c",
    flags="",
)
LIBSODIUM_CONFIGURE = "./configure --disable-shared --enable-minimal"

#: Ninja (C++), Kitware's branch with make's jobserver, as the `ninja` package's sdist
#: bundles it in `ninja-upstream`, with its upstream CMakeLists.txt: built by CMake, not
#: by our Makefile.  Its library, lexers and executable are 31 C++ files, no dependencies.
NINJA = Project(
    requirement="ninja==1.11.1.4",
    archive="ninja-1.11.1.4.tar.gz",
    sha256="6aa39f6e894e0452e5b297327db00019383ae55d5d9c57c73b04f13bf79d438a",
    top="ninja-1.11.1.4/ninja-upstream",
    sources=(),  # its CMakeLists.txt says what to compile
    language="c++",
    flags="",
)
PIP_TIMEOUT = 300.0
#: Source distributions only, and only the package itself (nothing gets installed).
PIP_DOWNLOAD = (
    *(sys.executable, "-m", "pip", "download", "--disable-pip-version-check"),
    *("--no-binary", ":all:", "--no-deps"),
)


def cache_dir() -> Path:
    """Where downloaded sdists are kept across test runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "p2pcc-test-projects"


def fetch(project: Project) -> Path:
    """The project's sdist, downloaded into `cache_dir()` on first use; checked each time."""
    directory = cache_dir()
    archive = directory / project.archive
    if not archive.exists():
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory) as download:
            result = subprocess.run(
                [*PIP_DOWNLOAD, "-d", download, project.requirement],
                capture_output=True,
                text=True,
                timeout=PIP_TIMEOUT,
                check=False,
            )
            saved = Path(download) / project.archive
            if result.returncode != 0 or not saved.exists():
                raise RuntimeError(
                    f"cannot download {project.requirement} from PyPI into {directory} "
                    f"(exit {result.returncode}): {result.stderr[-2000:]}"
                )
            saved.replace(archive)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != project.sha256:
        raise RuntimeError(
            f"{archive} has SHA-256 {digest}, expected {project.sha256}; "
            "delete it to download it again"
        )
    return archive


@dataclass(frozen=True)
class Tree:
    """An unpacked project with our Makefile: where to run make, and what it compiles."""

    project: Project
    path: Path
    sources: tuple[str, ...]

    @property
    def object_names(self) -> set[str]:
        """The objects a successful build leaves, relative to `path`."""
        return {str(Path(source).with_suffix(".o")) for source in self.sources}


def unpack(
    project: Project,
    dest: Path,
    *,
    only: tuple[str, ...] | None = None,
    leave_out: tuple[str, ...] = (),
) -> Tree:
    """A fresh source tree of `project` under `dest`, with our Makefile.

    For quicker builds, `only` limits them to the sources under those directories, and
    the sources in `leave_out` are not compiled."""
    path = extract(project, dest)
    sources = list_sources(project, path)
    if only is not None:
        sources = [s for s in sources if s.startswith(only)]
    sources = [s for s in sources if s not in leave_out]
    (path / "Makefile").write_text(makefile(project, sources))
    return Tree(project, path, tuple(sources))


def extract(project: Project, dest: Path) -> Path:
    """The project's sdist unpacked under `dest` as it is (fetched first if need be); the
    path of its `top` directory."""
    archive = fetch(project)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest / project.top


def list_sources(project: Project, tree: Path) -> list[str]:
    """The sources the project compiles, relative to its tree."""
    found: list[str] = []
    for pattern in project.sources:
        found += sorted(str(path.relative_to(tree)) for path in tree.glob(pattern))
    return found


def makefile(project: Project, sources: list[str]) -> str:
    """A Makefile that compiles each source to an object next to it and does nothing else."""
    suffix = Path(sources[0]).suffix
    compiler = project.compiler_variable
    flags = "CFLAGS" if project.language == "c" else "CXXFLAGS"
    return (
        f"# Written by tests/integration/project.py for {project.requirement}.\n"
        "MAKEFLAGS += --no-builtin-rules\n"
        f"SRCS := {' '.join(sources)}\n"
        f"OBJS := $(SRCS:{suffix}=.o)\n"
        f"{flags} := -O2 -g {project.flags}\n"
        ".PHONY: all\n"
        "all: $(OBJS)\n"
        f"%.o: %{suffix}\n"
        f"\t$({compiler}) $({flags}) -c $< -o $@\n"
    )


def make_command(tree: Tree, compiler: str, jobs: int, timeout: float) -> list[str]:
    """`make -C TREE -jN CC=compiler` (CXX for C++), killed after `timeout` seconds.

    `-C` rather than a working directory: entering a workstation's mount namespace
    (nsenter) starts the command in that namespace's root directory."""
    variable = tree.project.compiler_variable
    command = ["timeout", "-k", "5", str(timeout), "make", "-C", str(tree.path)]
    return [*command, f"-j{jobs}", f"{variable}={compiler}"]


#: Where CMake's `check_ipo_supported` leaves the objects of its configure-time LTO
#: test projects: not the build's, and LTO objects differ from one compile to the next.
CMAKE_LTO_CHECKS = "_CMakeLTOTest-"


def objects(tree: Path) -> dict[str, Path]:
    """The object files a build left in a tree, by path relative to it."""
    found = {str(path.relative_to(tree)): path for path in sorted(tree.rglob("*.o"))}
    return {name: path for name, path in found.items() if CMAKE_LTO_CHECKS not in name}


def code_of(obj: Path) -> bytes:
    """The object's bytes without debug information (`objcopy --strip-debug`)."""
    with tempfile.TemporaryDirectory() as scratch:
        stripped = Path(scratch) / obj.name
        subprocess.run(
            ["objcopy", "--strip-debug", str(obj), str(stripped)], check=True, capture_output=True
        )
        return stripped.read_bytes()


def differing_objects(built: Path, reference: Path) -> list[str]:
    """Objects of `built` whose code differs from (or is missing in) `reference`."""
    theirs = objects(reference)
    return [
        name
        for name, path in objects(built).items()
        if name not in theirs or code_of(path) != code_of(theirs[name])
    ]


def compiled_by(obj: Path) -> str:
    """The compiler that made an object, from its `.comment` section ("GCC: (...) 12.2.0")."""
    result = subprocess.run(
        ["readelf", "-p", ".comment", str(obj)], capture_output=True, text=True, check=True
    )
    return " ".join(
        line.split("]", 1)[1].strip() for line in result.stdout.splitlines() if "]" in line
    )
