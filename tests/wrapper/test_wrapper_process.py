"""The wrapper as builds run it: a fresh interpreter started through an installed link.

The compiler and distcc are stand-ins that record their argv and environment, so every
test sees exactly what was exec'd; the real distcc and distccd are in
tests/integration/test_wrapper_loopback.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from p2pcc import statefile
from p2pcc.wrapper.lookup import ENTRY_NAME, MARKER, PYTHON_ENTRY_NAME
from tests.wrapper.bed import FINGERPRINT, REMOTE_NAME, WrapperBed, warnings_in, write_script

COMPILE = ["-O2", "-Wall", "-c", "a.c", "-o", "a.o"]


@pytest.fixture
def bed(tmp_path: Path) -> WrapperBed:
    wrapper_bed = WrapperBed(tmp_path)
    wrapper_bed.install()
    return wrapper_bed


def test_a_link_step_runs_the_real_compiler_with_argv_env_and_status_untouched(
    bed: WrapperBed,
) -> None:
    env = bed.env(FAKE_EXIT="3", SOME_VARIABLE="kept as is", DISTCC_HOSTS="mine")
    run = bed.run("gcc", ["a.o", "b.o", "-o", "prog", "-lm"], env)
    assert run.returncode == 3
    assert run.argv == [str(bed.gcc), "a.o", "b.o", "-o", "prog", "-lm"]
    assert run.env == env  # PATH, DISTCC_HOSTS and the rest exactly as given
    assert run.stderr == ""  # a link step reads no state file: nothing to warn about


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ({}, {}),  # Python coerces the C locale to C.UTF-8 for its children: undone
        ({"LANG": "C"}, {"LANG": "C"}),
        ({"LC_CTYPE": "C.UTF-8"}, {"LC_CTYPE": "C.UTF-8"}),  # the user's own: kept
        ({"LC_ALL": "C"}, {"LC_ALL": "C"}),
        ({"LC_ALL": "C", "LC_CTYPE": "C.UTF-8"}, {"LC_ALL": "C", "LC_CTYPE": "C.UTF-8"}),
    ],
)
def test_the_compilers_locale_is_the_callers(
    bed: WrapperBed, locale: dict[str, str], expected: dict[str, str]
) -> None:
    env = {k: v for k, v in bed.env().items() if k != "LC_ALL"} | locale
    run = bed.run("gcc", ["x.o"], env)
    assert run.env is not None
    assert {k: v for k, v in run.env.items() if k.startswith(("LC_", "LANG"))} == expected
    bed.write_state()
    run = bed.run("gcc", COMPILE, env)
    assert run.env is not None
    assert run.argv is not None
    assert run.argv[0] == str(bed.distcc)
    assert {k: v for k, v in run.env.items() if k.startswith(("LC_", "LANG"))} == expected


def test_a_distributable_compile_execs_distcc_with_the_hosts_line_and_remote_name(
    bed: WrapperBed,
) -> None:
    bed.write_state("10.9.8.7:3632/4 localhost/2")
    second_link_dir = bed.root / "more-links"
    second_link_dir.mkdir()
    (second_link_dir / MARKER).write_text("")
    path = f"{bed.links}:{second_link_dir}:{bed.realbin}:/usr/bin:/bin"
    env = bed.env(PATH=path, FAKE_EXIT="7", DISTCC_DIR=str(bed.root / "dd"))
    run = bed.run("gcc", COMPILE, env)
    assert run.returncode == 7
    assert run.argv == [str(bed.distcc), REMOTE_NAME, *COMPILE]
    assert run.env is not None
    assert run.env["DISTCC_HOSTS"] == "10.9.8.7:3632/4 localhost/2"
    assert run.env["PATH"] == f"{bed.realbin}:/usr/bin:/bin"  # every link directory out
    assert {k: v for k, v in run.env.items() if k not in ("DISTCC_HOSTS", "PATH")} == {
        k: v for k, v in env.items() if k != "PATH"
    }
    assert (bed.root / "dd").is_dir()  # distcc compiles everything locally without it


def test_an_entry_script_written_by_an_older_install_links_still_compiles(
    bed: WrapperBed,
) -> None:
    """Older entry scripts call `main(state_files=..., ...)`: an upgrade of p2pcc must
    not break every compile until the links are refreshed."""
    entry = bed.links / PYTHON_ENTRY_NAME
    text = entry.read_text()
    start = text.index("main(Settings(")
    keywords = text[start + len("main(Settings(") : text.rindex("))")]
    entry.write_text(text[:start].replace("Settings, main", "main") + f"main({keywords})\n")
    assert "Settings" not in entry.read_text()
    bed.write_state("10.9.8.7:3632/4 localhost/2")
    run = bed.run("gcc", COMPILE, bed.env(DISTCC_DIR=str(bed.root / "dd")))
    assert run.returncode == 0
    assert run.argv == [str(bed.distcc), REMOTE_NAME, *COMPILE]


def test_distcc_dir_defaults_to_home_dot_distcc(bed: WrapperBed) -> None:
    bed.write_state()
    run = bed.run("gcc", COMPILE)
    assert run.argv is not None
    assert run.argv[0] == str(bed.distcc)
    assert (bed.root / ".distcc").is_dir()


def test_only_localhost_in_the_line_means_a_plain_local_compile(bed: WrapperBed) -> None:
    bed.write_state("localhost/2")
    run = bed.run("gcc", COMPILE)
    assert run.argv == [str(bed.gcc), *COMPILE]
    assert run.stderr == ""  # no peers is normal, not a problem


@pytest.mark.parametrize(
    "args",
    [
        ["-E", "a.c"],
        ["-c", "conftest.c"],
        ["-c", "a.c", "b.c"],
        ["--version"],
        ["-c", "a.c", "-fplugin=./p.so"],
        ["-M", "a.c"],
    ],
)
def test_calls_distcc_would_run_locally_skip_distcc(bed: WrapperBed, args: list[str]) -> None:
    bed.write_state()
    run = bed.run("gcc", args)
    assert run.argv == [str(bed.gcc), *args]


def test_daemon_down_compiles_locally_with_one_warning_per_build(bed: WrapperBed) -> None:
    script = write_script(
        bed.root / "build.sh", "#!/bin/sh\nfor i in 1 2 3; do gcc -c a.c -o a.o || exit 9; done\n"
    )
    env = bed.env()
    first = bed.run(str(script), [], env, start_new_session=True)
    assert first.returncode == 0
    assert first.argv == [str(bed.gcc), "-c", "a.c", "-o", "a.o"]
    [warning] = warnings_in(first.stderr)
    assert "the p2pcc daemon is not running" in warning
    assert str(bed.runtime / statefile.FILE_NAME) in warning
    second = bed.run(str(script), [], env, start_new_session=True)
    assert len(warnings_in(second.stderr)) == 1  # another build, another warning


def test_ninja_style_process_groups_share_one_warning(bed: WrapperBed) -> None:
    # ninja starts every command in a process group of its own: the build is ninja's.
    tool = write_script(
        bed.root / "tool.py",
        f"#!{sys.executable}\n"
        "import subprocess\n"
        "for _ in range(3):\n"
        "    subprocess.run(['gcc', '-c', 'a.c'], process_group=0, check=True)\n",
    )
    launcher = write_script(
        bed.root / "launch.py",
        f"#!{sys.executable}\n"
        "import subprocess, sys\n"
        f"sys.exit(subprocess.run([{str(tool)!r}], process_group=0).returncode)\n",
    )
    run = bed.run(str(launcher), [], bed.env(), start_new_session=True)
    assert run.returncode == 0
    assert len(warnings_in(run.stderr)) == 1


def test_a_stale_state_file_is_a_daemon_that_is_down(bed: WrapperBed) -> None:
    bed.write_state(age=60.0)
    run = bed.run("gcc", COMPILE, start_new_session=True)
    assert run.argv == [str(bed.gcc), *COMPILE]
    [warning] = warnings_in(run.stderr)
    assert "has not updated" in warning
    assert "limit 10 s" in warning


def test_a_corrupt_state_file_compiles_locally(bed: WrapperBed) -> None:
    (bed.runtime / statefile.FILE_NAME).write_text("p2pcc-state 1\nwritten\tsoon\n")
    run = bed.run("gcc", COMPILE, start_new_session=True)
    assert run.argv == [str(bed.gcc), *COMPILE]
    assert "not a p2pcc state file" in warnings_in(run.stderr)[0]


def test_p2pcc_runtime_dir_in_the_environment_wins(bed: WrapperBed) -> None:
    other = bed.root / "other-run"
    other.mkdir()
    bed.write_state()
    (bed.runtime / statefile.FILE_NAME).rename(other / statefile.FILE_NAME)
    run = bed.run("gcc", COMPILE, bed.env(P2PCC_RUNTIME_DIR=str(other)))
    assert run.argv is not None
    assert run.argv[0] == str(bed.distcc)


def test_p2pcc_disable_compiles_locally_without_a_word(bed: WrapperBed) -> None:
    bed.write_state()
    run = bed.run("gcc", COMPILE, bed.env(P2PCC_DISABLE="1"))
    assert run.argv == [str(bed.gcc), *COMPILE]
    assert run.stderr == ""


def test_under_distcc_or_distccd_the_real_compiler_runs(bed: WrapperBed) -> None:
    bed.write_state()
    run = bed.run("gcc", ["-c", "/tmp/distccd_1.i", "-o", "x.o"], bed.env(_DISTCC_SAFEGUARD="1"))
    assert run.argv == [str(bed.gcc), "-c", "/tmp/distccd_1.i", "-o", "x.o"]


def test_missing_distcc_compiles_locally_with_a_warning(tmp_path: Path) -> None:
    bed = WrapperBed(tmp_path, distcc=False)
    bed.install()
    bed.write_state()
    run = bed.run("gcc", COMPILE, start_new_session=True)
    assert run.argv == [str(bed.gcc), *COMPILE]
    assert "is not installed" in warnings_in(run.stderr)[0]


def test_an_unknown_compiler_compiles_locally_with_a_warning(bed: WrapperBed) -> None:
    bed.write_state(compilers={})
    run = bed.run("gcc", COMPILE, start_new_session=True)
    assert run.argv == [str(bed.gcc), *COMPILE]
    assert "is not a compiler the p2pcc daemon knows" in warnings_in(run.stderr)[0]


def test_a_compiler_changed_since_the_daemon_looked_is_not_trusted(bed: WrapperBed) -> None:
    bed.write_state()
    bed.gcc.write_text(bed.gcc.read_text() + "# upgraded\n")  # new size and mtime
    run = bed.run("gcc", COMPILE, start_new_session=True)
    assert run.argv == [str(bed.gcc), *COMPILE]
    assert len(warnings_in(run.stderr)) == 1


def test_a_remote_name_that_is_another_binary_here_compiles_locally(bed: WrapperBed) -> None:
    (bed.realbin / REMOTE_NAME).unlink()
    write_script(bed.realbin / REMOTE_NAME, "#!/bin/sh\nexit 99\n")
    bed.write_state()
    run = bed.run("gcc", COMPILE, start_new_session=True)
    assert run.argv == [str(bed.gcc), *COMPILE]
    assert f"{REMOTE_NAME}, the name peers run gcc under" in run.stderr


def test_native_flags_are_replaced_by_the_recorded_expansion(bed: WrapperBed) -> None:
    expansion = ("-march=znver3", "-mavx2", "--param=l1-cache-size=32", "-mtune=znver3")
    bed.write_state(natives={FINGERPRINT: {"-march=native": expansion}})
    run = bed.run("gcc", ["-mno-avx2", "-march=native", *COMPILE])
    assert run.argv == [str(bed.distcc), REMOTE_NAME, *expansion, "-mno-avx2", *COMPILE]


def test_native_flags_without_a_recorded_expansion_compile_locally(bed: WrapperBed) -> None:
    bed.write_state(natives={FINGERPRINT: {"-march=native": ("-march=znver3",)}})
    args = ["-mtune=native", *COMPILE]
    run = bed.run("gcc", args, bed.env(P2PCC_VERBOSE="1"))
    assert run.argv == [str(bed.gcc), *args]
    assert "no expansion of -mtune=native" in run.stderr


def test_the_only_gcc_on_path_being_our_link_is_refused_like_a_shell_would(
    bed: WrapperBed,
) -> None:
    copy = bed.root / "stray"
    copy.mkdir()
    (copy / "gcc").symlink_to(bed.links / ENTRY_NAME)  # our wrapper, in an unmarked dir
    env = bed.env(PATH=f"{bed.links}:{copy}:/nonexistent")
    run = bed.run("gcc", COMPILE, env)
    assert run.returncode == 127
    assert run.argv is None
    assert run.stderr == (
        f"p2pcc: no real gcc on PATH after the p2pcc link directory {bed.links}: install "
        "gcc, or take the link out of that directory (p2pcc install-links refreshes it)\n"
    )


def test_the_entry_script_run_by_its_own_name_says_how_it_is_used(bed: WrapperBed) -> None:
    run = bed.run(str(bed.links / ENTRY_NAME), ["-c", "a.c"])
    assert run.returncode == 2
    assert "runs as a compiler, through the links next to it" in run.stderr
    assert run.argv is None


def test_a_ccache_masquerade_after_the_links_is_passed_over(bed: WrapperBed) -> None:
    # ccache would call the first gcc after its own directory: our link, forever.
    write_script(bed.root / "ccache", "#!/bin/sh\nexit 42\n")
    ccache_dir = bed.root / "ccache-links"
    ccache_dir.mkdir()
    (ccache_dir / "gcc").symlink_to("../ccache")  # how ccache's masquerade links look
    env = bed.env(PATH=f"{bed.links}:{ccache_dir}:{bed.realbin}:/usr/bin:/bin")
    run = bed.run("gcc", ["x.o"], env)
    assert run.returncode == 0
    assert run.argv == [str(bed.gcc), "x.o"]


HARNESS = """
import posix, sys
before = set(sys.modules)
def stop(*args):
    print(' '.join(sorted(set(sys.modules) - before)))
    print(args[0], flush=True)
    posix._exit(0)
posix.execv = posix.execve = stop
entry = sys.argv[1]
sys.argv = [entry, 'gcc', *sys.argv[2:]]  # as the trampoline runs it
code = compile(open(entry).read(), entry, 'exec')
exec(code, {'__name__': '__main__'})
"""

# What the issue forbids, and `os`: not loaded under -I -S, it alone costs ~2 ms.
FORBIDDEN = {"trio", "zeroconf", "platformdirs", "typing", "dataclasses", "enum", "json", "re"}
FORBIDDEN |= {"subprocess", "pathlib", "msgpack", "asyncio", "collections", "tomllib", "os"}
ALLOWED = {
    "gc",  # built in: the entry turns the collector off
    "p2pcc",
    "p2pcc.safe_files",
    "p2pcc.statefile",
    "p2pcc.wrapper",
    "p2pcc.wrapper.main",
    "p2pcc.wrapper.args",
    "p2pcc.wrapper.lookup",
    "p2pcc.wrapper.warn",
    "p2pcc.wrapper.native",
}


@pytest.mark.parametrize(
    ("args", "state", "goes_to"),
    [
        (["a.o", "-o", "prog"], False, "gcc"),  # link step
        (COMPILE, False, "gcc"),  # daemon down: state file read, warning given
        (COMPILE, True, "distcc"),
        (["-march=native", *COMPILE], True, "distcc"),
    ],
)
def test_the_wrapper_imports_nothing_but_os_sys_and_its_own_modules(
    bed: WrapperBed, args: list[str], state: bool, goes_to: str
) -> None:
    if state:
        natives = {FINGERPRINT: {"-march=native": ("-march=znver3",)}}
        bed.write_state(natives=natives)
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", HARNESS, str(bed.links / PYTHON_ENTRY_NAME), *args],
        env=bed.env(),
        cwd=bed.root,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    modules_line, program = done.stdout.splitlines()
    modules = set(modules_line.split())
    assert modules <= ALLOWED, modules - ALLOWED
    assert not modules & FORBIDDEN
    assert os.path.basename(program) == goes_to
    assert ("p2pcc.wrapper.args" in modules) == ("-c" in args)  # only for compiles
    assert ("p2pcc.statefile" in modules) == ("-c" in args)
    assert ("p2pcc.wrapper.native" in modules) == ("-march=native" in args)
    assert ("p2pcc.wrapper.warn" in modules) == ("-c" in args and not state)
