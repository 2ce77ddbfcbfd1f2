"""The wrapper believes only a state file nobody else could have written, and takes from
it only what it has checked: real links, a fresh interpreter per compile (see bed.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from p2pcc import statefile
from tests.wrapper.bed import FINGERPRINT, REMOTE_NAME, Run, WrapperBed, warnings_in, write_script

COMPILE = ["-O2", "-c", "a.c", "-o", "a.o"]
NOBODY = 65534


@pytest.fixture
def bed(tmp_path: Path) -> WrapperBed:
    wrapper_bed = WrapperBed(tmp_path)
    wrapper_bed.install()
    return wrapper_bed


def build(bed: WrapperBed, env: dict[str, str] | None = None) -> Run:
    """Two compiles in one build (a process group of their own); the last one recorded."""
    script = write_script(
        bed.root / "build.sh", "#!/bin/sh\ngcc -O2 -c a.c -o a.o && gcc -O2 -c a.c -o a.o\n"
    )
    return bed.run(str(script), [], env or bed.env(), start_new_session=True)


def make_group_writable(bed: WrapperBed) -> str:
    (bed.runtime / statefile.FILE_NAME).chmod(0o664)
    return "it is writable by its group"


def make_world_writable(bed: WrapperBed) -> str:
    (bed.runtime / statefile.FILE_NAME).chmod(0o646)
    return "it is writable by others"


def make_directory_group_writable(bed: WrapperBed) -> str:
    bed.runtime.chmod(0o770)
    return f"its directory {bed.runtime} is writable by its group"


def put_a_link_in_its_place(bed: WrapperBed) -> str:
    path = bed.runtime / statefile.FILE_NAME
    path.rename(bed.root / "elsewhere")
    path.symlink_to(bed.root / "elsewhere")  # to a good file: still not followed
    return "it is a symbolic link, not a regular file"


def give_it_to_nobody(bed: WrapperBed) -> str:
    if os.geteuid() != 0:
        pytest.skip("giving a file away needs root")
    os.chown(bed.runtime / statefile.FILE_NAME, NOBODY, NOBODY)
    return f"it belongs to uid {NOBODY}, not to root"


@pytest.mark.parametrize(
    "spoil",
    [
        make_group_writable,
        make_world_writable,
        make_directory_group_writable,
        put_a_link_in_its_place,
        give_it_to_nobody,
    ],
)
def test_an_untrusted_state_file_compiles_locally_with_one_warning_naming_it(
    bed: WrapperBed, spoil: Callable[[WrapperBed], str]
) -> None:
    bed.write_state()
    why = spoil(bed)
    run = build(bed)
    assert run.returncode == 0
    assert run.argv == [str(bed.gcc), *COMPILE]
    assert warnings_in(run.stderr) == [
        f"p2pcc: not trusting the state file {bed.runtime / statefile.FILE_NAME}: {why}; "
        "compiling locally (this warning is shown once per build)"
    ]


def test_p2pcc_runtime_dir_is_held_to_the_same_rule(bed: WrapperBed) -> None:
    shared = bed.root / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: anyone may put a file there
    bed.write_state()
    (bed.runtime / statefile.FILE_NAME).rename(shared / statefile.FILE_NAME)
    run = build(bed, bed.env(P2PCC_RUNTIME_DIR=str(shared)))
    assert run.argv == [str(bed.gcc), *COMPILE]
    [warning] = warnings_in(run.stderr)
    assert f"its directory {shared} is writable by its group and others" in warning


@pytest.mark.parametrize(
    "flag", ["-wrapper", "-B/tmp/evil", "@/tmp/flags", "-specs=/tmp/s", "-fplugin=/tmp/p.so"]
)
def test_a_native_record_with_anything_but_m_options_is_not_used(
    bed: WrapperBed, flag: str
) -> None:
    expansion = ("-march=znver3", flag, "/bin/sh,-c,touch owned", "-mtune=znver3")
    bed.write_state(natives={FINGERPRINT: {"-march=native": expansion}})
    args = ["-march=native", *COMPILE]
    run = bed.run("gcc", args, bed.env(P2PCC_VERBOSE="1"))
    assert run.argv == [str(bed.gcc), *args]  # the user's own flags, nothing spliced
    assert f"the recorded expansion of -march=native holds {flag!r}: not used" in run.stderr
    assert warnings_in(run.stderr) == []  # as if there were no record: no warning


def test_a_hosts_line_is_rebuilt_from_its_checked_parts(bed: WrapperBed) -> None:
    line = "[fe80::1%eth0]:3632/4,lzo 10.9.8.7:3632/2 localhost/2"
    bed.write_state(line)
    run = bed.run("gcc", COMPILE)
    assert run.argv == [str(bed.distcc), REMOTE_NAME, *COMPILE]
    assert run.env is not None
    assert run.env["DISTCC_HOSTS"] == line


@pytest.mark.parametrize(
    "line",
    [
        "10.9.8.7:3632/4 --randomize",
        "10.9.8.7:3632/4 root@10.9.8.7/4",
        "@10.9.8.7/4",
        "10.9.8.7/4",
        "evil.example.com:3632/4",
        "10.9.8.7:3632/4,lzo,cpp",
        "10.9.8.7:3632/4  localhost/2",
    ],
)
def test_a_hosts_line_outside_the_daemons_grammar_compiles_locally_with_a_warning(
    bed: WrapperBed, line: str
) -> None:
    bed.write_state(line)
    run = build(bed)
    assert run.argv == [str(bed.gcc), *COMPILE]
    [warning] = warnings_in(run.stderr)
    path = bed.runtime / statefile.FILE_NAME
    assert f"the hosts line for gcc in {path} is not one the p2pcc daemon writes" in warning
    assert repr(line) in warning
