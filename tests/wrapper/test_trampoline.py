"""The sh trampoline, run by real dash (and bash --posix): the same decisions as the
Python classifier on its whole test table and on random argument lists, and the same
PATH search as `lookup.find_real`; everything it is unsure of goes to Python."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pcc.cli.link_install import find_readlink
from p2pcc.wrapper import args as rules
from p2pcc.wrapper.args import classify
from p2pcc.wrapper.lookup import ENTRY_NAME, MARKER, PYTHON_ENTRY_NAME
from p2pcc.wrapper.trampoline import quote, script
from tests.wrapper.test_args import DISTRIBUTABLE, LOCAL

SHELLS = [["dash"], ["bash", "--posix"]]

#: Records who ran (its tag), then $0 and the arguments, NUL-separated.
RECORDER = """#!/bin/sh
printf '%s\\0' {tag} "$0" "$@" > "${{RECORD:?}}"
/usr/bin/env -0 > "$RECORD.env"
exit 7
"""


@dataclass
class Outcome:
    """Who the trampoline ran: "compiler" (locally, by itself) or "python"."""

    who: str
    argv: list[str]  # $0 and the arguments it got
    status: int


class Bed:
    """Links in `root/links` (trampoline, marker, `gcc` link), a recording `gcc` in
    `root/bin` and a recording stand-in for the Python entry's interpreter."""

    def __init__(
        self,
        root: Path,
        shell: Sequence[str],
        *,
        readlink: str | None,
        known: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.shell = [shutil.which(shell[0]) or shell[0], *shell[1:]] if shell else []
        self.links = root / "links"
        self.bin = root / "bin"
        self.links.mkdir()
        self.bin.mkdir()
        (self.links / MARKER).write_text("")
        self.python = recorder(root / "python", "python")
        self.gcc = recorder(self.bin / "gcc", "compiler")
        entry = self.links / ENTRY_NAME
        entry.write_text(script(str(self.links), str(self.python), readlink, known))
        entry.chmod(0o755)
        (self.links / "gcc").symlink_to(ENTRY_NAME)
        self.record = root / "record"
        self.path = f"{self.links}:{self.bin}:/usr/bin:/bin"

    def run(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, name: str = "gcc"
    ) -> Outcome:
        """`name argv…` through the link, run by the bed's shell."""
        self.record.unlink(missing_ok=True)
        environment = {"PATH": self.path, "RECORD": str(self.record), **(env or {})}
        done = subprocess.run(
            [*self.shell, str(self.links / name), *argv],
            env=environment,
            cwd=self.root,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert self.record.exists(), done.stderr
        fields = [part.decode() for part in self.record.read_bytes().split(b"\0")[:-1]]
        return Outcome(fields[0], fields[1:], done.returncode)

    def environment(self) -> dict[str, str]:
        """The environment the last stand-in got."""
        fields = Path(f"{self.record}.env").read_bytes().split(b"\0")[:-1]
        return dict(field.decode().split("=", 1) for field in fields)


def recorder(path: Path, tag: str) -> Path:
    path.write_text(RECORDER.format(tag=tag))
    path.chmod(0o755)
    return path


def python_decides(argv: list[str]) -> str:
    """Where the Python wrapper's classifier sends `argv`: "python" goes on to the
    state file (a distributable compile), "compiler" stays local."""
    return "python" if classify(argv)[0] else "compiler"


@pytest.fixture(params=SHELLS, ids=lambda shell: shell[0])
def bed(request: pytest.FixtureRequest, tmp_path: Path) -> Bed:
    if shutil.which(request.param[0]) is None:
        pytest.skip(f"needs {request.param[0]}")
    return Bed(tmp_path, request.param, readlink=find_readlink())


TABLE = [*DISTRIBUTABLE, *(line for line, _ in LOCAL)]


def test_the_classifiers_whole_table_decides_alike(bed: Bed) -> None:
    for line in TABLE:
        argv = shlex.split(line)
        outcome = bed.run(argv)
        assert outcome.who == python_decides(argv), line
        assert outcome.argv[-len(argv) :] == argv, line
        assert outcome.status == 7


#: Words the rules know, and words around them: random command lines are made of these.
VOCABULARY = sorted(
    {
        *rules.SEPARATE_ARGUMENT,
        *rules.LOCAL_WITH_ARGUMENT,
        *rules.QUERIES,
        *(prefix + "x" for prefix, _ in rules.LOCAL_PREFIXES),
        *rules.DEPENDENCY_MODIFIERS,
        *(prefix + "d.d" for prefix in rules.DEPENDENCY_JOINED),
        "-c", "-S", "-E", "-M", "-MM", "-MJx", "-o", "-oout.o", "-o-", "-", "@rsp", "",
        "a.c", "b.cpp", "x.C", "y.c++", "z.s", "h.h", "o.o", "conftest.c", "dir/conftest.o",
        "tmp.conftest.c", "conftest.d/a.c", "-Wa,-adhln", "-Wa,--MD", "-Wa,-g", "-Wa,x,-a",
        "-fopt-info", "-fopt-info-vec=f", "-fsanitize=address", "-fsanitize-ignorelist=f",
        "-dM", "-d", "-dumpdir", "-dumpx", "-O2", "-g", "-Wall", "-DX=1", "-I.", "-march=native",
        "a b.c", "it's.c", '"q".c', "-xc", "-B/x", "-fplugin=p.so", "$HOME.c", "*.c", "-o*",
        "new\nline.c", "-c x.c",
    }
)  # fmt: skip


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(VOCABULARY), max_size=7))
def test_random_command_lines_decide_alike(bed: Bed, argv: list[str]) -> None:
    outcome = bed.run(argv)
    assert outcome.who == python_decides(argv)
    assert outcome.argv[len(outcome.argv) - len(argv) :] == argv


@pytest.mark.parametrize(
    "argv",
    [
        ["a b.o", "-o", "it's here", '-DX="a b"', "-DY='c'"],
        ["", "-o", "", "x.o"],
        ["-DX=$(touch pwned)", "`id`", "*", "a\nb", "-c"],
    ],
)
def test_arguments_reach_the_compiler_untouched(bed: Bed, argv: list[str]) -> None:
    outcome = bed.run(argv)
    assert outcome.who == "compiler"
    assert outcome.argv == [str(bed.gcc), *argv]  # argv[0]: the full path, as Python does
    assert not (bed.root / "pwned").exists()


def test_a_distributable_compile_goes_to_python_with_the_link_name(bed: Bed) -> None:
    argv = ["-O2", "-c", "a b.c", "-o", "a.o"]
    outcome = bed.run(argv)
    assert outcome.who == "python"
    entry = str(bed.links / PYTHON_ENTRY_NAME)
    assert outcome.argv == [str(bed.python), "-I", "-S", entry, str(bed.links / "gcc"), *argv]


@pytest.mark.parametrize(
    ("env", "who"),
    [
        ({"P2PCC_DISABLE": "1"}, "compiler"),
        ({"P2PCC_DISABLE": "0"}, "python"),
        ({"P2PCC_DISABLE": ""}, "python"),
        ({"_DISTCC_SAFEGUARD": ""}, "compiler"),
        ({"_DISTCC_SAFEGUARD": "1"}, "compiler"),
        ({"P2PCC_VERBOSE": "1", "P2PCC_DISABLE": "1"}, "python"),  # Python says why
        ({"P2PCC_VERBOSE": "0"}, "python"),
        ({"_p2pcc_a": "mine"}, "python"),  # our variable would reach the compiler changed
    ],
)
def test_the_environment_switches(bed: Bed, env: dict[str, str], who: str) -> None:
    assert bed.run(["-c", "a.c"], env).who == who


def test_a_query_passes_the_environment_on(bed: Bed) -> None:
    env = {"SOME": "value with spaces", "_p2pcc_": "not one of ours", "DISTCC_HOSTS": "x"}
    assert bed.run(["--version"], env).who == "compiler"
    got = bed.environment()
    assert {key: got.get(key) for key in env} == env


def test_the_entry_run_by_its_own_name_goes_to_python(bed: Bed) -> None:
    assert bed.run(["--version"], name=ENTRY_NAME).who == "python"


def run_with_path(bed: Bed, path: str, argv: Sequence[str] = ("--version",)) -> Outcome:
    return bed.run(list(argv), {"PATH": path})


def test_link_directories_and_our_own_file_are_passed_over(bed: Bed) -> None:
    other = bed.root / "other-links"  # another link directory: marked
    other.mkdir()
    (other / MARKER).write_text("")
    recorder(other / "gcc", "wrong")
    stray = bed.root / "stray"  # our trampoline under the name gcc, in an unmarked place
    stray.mkdir()
    (stray / "gcc").symlink_to(bed.links / ENTRY_NAME)
    outcome = run_with_path(bed, f"{bed.links}:{other}:{stray}:{bed.bin}")
    assert outcome.who == "compiler"
    assert outcome.argv == [str(bed.bin / "gcc"), "--version"]


def test_no_real_compiler_goes_to_python_which_says_so(bed: Bed) -> None:
    stray = bed.root / "stray"
    stray.mkdir()
    (stray / "gcc").symlink_to(bed.links / ENTRY_NAME)
    assert run_with_path(bed, f"{bed.links}:{stray}:/nonexistent").who == "python"


def test_path_entries_are_spelled_as_python_spells_them(bed: Bed) -> None:
    # "" is the current directory, a trailing slash is not doubled.
    (bed.root / "gcc").symlink_to(bed.gcc)
    outcome = run_with_path(bed, f"{bed.links}::{bed.bin}")
    # bash's `exec` hands the kernel (and argv[0]) the path made absolute: the same file.
    assert outcome.argv[0] == ("./gcc" if "dash" in bed.shell[0] else str(bed.root / "gcc"))
    outcome = run_with_path(bed, f"{bed.links}:{bed.bin}/")
    assert outcome.argv[0] == f"{bed.bin}/gcc"


def test_a_ccache_masquerade_is_left_to_python(bed: Bed) -> None:
    recorder(bed.root / "ccache", "ccache")
    masquerade = bed.root / "ccache-links"
    masquerade.mkdir()
    (masquerade / "gcc").symlink_to("../ccache")
    assert run_with_path(bed, f"{bed.links}:{masquerade}:{bed.bin}").who == "python"


def test_a_symlinked_compiler_runs_without_python(bed: Bed) -> None:
    real = bed.root / "real"
    real.mkdir()
    (real / "gcc").symlink_to(bed.bin / "gcc")  # as /usr/bin/gcc -> gcc-12
    outcome = run_with_path(bed, f"{bed.links}:{real}")
    assert outcome.argv == [str(real / "gcc"), "--version"]


def test_without_readlink_a_symlinked_compiler_is_left_to_python(tmp_path: Path) -> None:
    bed = Bed(tmp_path, ["dash"], readlink=None)
    real = tmp_path / "real"
    real.mkdir()
    (real / "gcc").symlink_to(bed.bin / "gcc")
    assert run_with_path(bed, f"{bed.links}:{real}").who == "python"
    assert run_with_path(bed, f"{bed.links}:{bed.bin}").who == "compiler"  # a plain file


def test_a_symlink_read_at_install_time_is_trusted_while_it_resolves_alike(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "gcc").symlink_to("../bin/gcc")  # as /usr/bin/gcc -> gcc-12
    known = {str(real / "gcc"): str(tmp_path / "bin" / "gcc")}
    bed = Bed(tmp_path, ["dash"], readlink=None, known=known)  # no readlink: no other way
    assert run_with_path(bed, f"{bed.links}:{real}").argv == [str(real / "gcc"), "--version"]
    recorder(tmp_path / "ccache", "ccache")
    (real / "gcc").unlink()
    (real / "gcc").symlink_to("../ccache")  # made a ccache masquerade since: resolves elsewhere
    assert run_with_path(bed, f"{bed.links}:{real}").who == "python"


def test_a_compiler_it_may_not_execute_is_left_to_python(bed: Bed) -> None:
    blocked = bed.root / "blocked"
    blocked.mkdir()
    (blocked / "gcc").write_text("#!/bin/sh\n")
    (blocked / "gcc").chmod(0o644)
    assert run_with_path(bed, f"{bed.links}:{blocked}:{bed.bin}").who == "python"
    directory = bed.root / "dirs"
    (directory / "gcc").mkdir(parents=True)  # not a regular file: passed over, as Python does
    assert run_with_path(bed, f"{bed.links}:{directory}:{bed.bin}").who == "compiler"


def test_the_kernel_runs_it_with_bin_sh(tmp_path: Path) -> None:
    bed = Bed(tmp_path, [], readlink=find_readlink())
    assert bed.run(["-o", "prog", "a.o"]).argv == [str(bed.gcc), "-o", "prog", "a.o"]
    assert bed.run(["-c", "a.c"]).who == "python"


def test_every_rule_word_is_quoted_literally() -> None:
    assert quote("it's") == "'it'\\''s'"
    text = script("/l", "/p", "/r")
    for word in rules.QUERIES:
        assert quote(word) in text
