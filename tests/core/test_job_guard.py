"""The job guard's allowlist: a table of real and hostile command lines, each decided by
the Python classifier and by the generated sh guard (run with dash) alike."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from p2pcc.core.job_guard import (
    ARGUMENT_RULES,
    REFUSED_STATUS,
    Accepted,
    Refused,
    check_job,
    safe_prefix,
)
from p2pcc.core.job_guard_sh import (
    INPUT_WORD,
    OUTPUT_WORD,
    SystemDir,
    quote,
    render_guard,
    sandbox_argv,
)

JOB = "/run/p2pcc/distccd/jobs"
IN = f"{JOB}/distccd_9dbc6c99.i"
IN_CXX = f"{JOB}/distccd_ba9e6c99.ii"
OUT = f"{JOB}/distccd_9d816c99.o"

#: Command lines distcc 3.4 clients really sent (captured from a logging guard).
REAL = [
    ["-c", "-O2", "-g", "-fPIC", "-Wall", "-o", OUT, IN],
    ["-std=c++17", "-O2", "-g", "-fPIC", "-Wall", "-Wextra", "-c", IN_CXX, "-o", OUT],
    ["-c", "-O1", IN, "-o", OUT, "-target", "x86_64-pc-linux-gnu"],
    ["-S", IN, "-o", OUT],
    ["-c", "-fdebug-prefix-map=/tmp=/x", "-ffile-prefix-map=/a=/b", "-Wa,--noexecstack",
     "-x", "c", IN, "-o", OUT],
    ["-std=c++20", "-fconstexpr-ops-limit=4000000000", "-fconstexpr-loop-limit=2000000000",
     "-c", IN_CXX, "-o", OUT],
]  # fmt: skip

#: More shapes a build sends: each is accepted.
ACCEPTED = [
    ["-c", IN, "-o", OUT, *extra]
    for extra in (
        ["-O3", "-march=x86-64-v2", "-mtune=generic", "-mno-red-zone", "-mavx2"],
        ["-Os"], ["-Og", "-ggdb3"], ["-Ofast"], ["-O"], ["-g0"], ["-gdwarf-4"], ["-gz=zlib"],
        ["-fno-omit-frame-pointer", "-fstack-protector-strong", "-fvisibility=hidden"],
        ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"],
        ["-fdiagnostics-color=always", "-fmax-errors=5", "-ftemplate-depth=900"],
        ["-Werror", "-Wno-unused-parameter", "-Werror=format-security", "-Wframe-larger-than=4096"],
        ["-std=gnu11", "-pedantic-errors", "-ansi", "-w", "-pthread", "-pipe"],
        ["-fcf-protection=full", "-ftrivial-auto-var-init=zero", "-fzero-call-used-regs=used-gpr"],
        ["--param", "max-inline-insns-single=200", "--param=ssp-buffer-size=4"],
        ["-x", "c++", "--target=aarch64-linux-gnu", "-flto", "-flto=auto", "-ffunction-sections"],
        ["-fmacro-prefix-map=/home/me/src=."],
        # What the p2pcc wrapper sends for -march=native (p2pcc.wrapper.native).
        ["-march=znver3", "-mmmx", "-msse4.1", "-mno-avx512f", "--param=l1-cache-size=32",
         "--param=l1-cache-line-size=64", "--param=l2-cache-size=512", "-mtune=znver3"],
        ["-fPIE", "-fno-plt", "-fexceptions"],
        # Link options real builds put in CFLAGS, which the distcc client passes on.
        ["-rdynamic", "-static", "-shared", "-no-pie", "-fuse-ld=lld", "-static-libgcc"],
    )
]  # fmt: skip

#: Hostile or unsupported command lines, each with (the start of) its refusal.
REFUSED = [
    (["-c", IN, "-o", OUT, "-wrapper", "/bin/sh,-c,touch /tmp/x"], "'-wrapper' is not on"),
    (["-c", IN, "-o", OUT, "-fplugin=/tmp/evil.so"], "'-fplugin=...' has a character"),
    (["-c", IN, "-o", OUT, "-fplugin=evil"], "'-fplugin=evil' loads a compiler plugin"),
    (["-c", IN, "-o", OUT, "-fplugin-arg-evil-x=1"], "'-fplugin-arg-evil-x=1' loads"),
    (["-c", IN, "-o", OUT, "-B/tmp/evil"], "'-B...' has a character"),
    (["-c", IN, "-o", OUT, "-Bevil"], "'-Bevil' is not on"),
    (["-c", IN, "-o", OUT, "-specs=/tmp/x"], "'-specs=...' has a character"),
    (["-c", IN, "-o", OUT, "-specs=x"], "'-specs=x' is not on"),
    (["-c", IN, "-o", OUT, "@/tmp/options"], "'...' has a character"),
    (["-c", IN, "-o", OUT, "@options"], "'...' has a character"),
    (["-c", IN, "-o", OUT, "--sysroot=/"], "'--sysroot=...' has a character"),
    (["-c", IN, "-o", OUT, "-iplugindir=x"], "'-iplugindir=x' loads"),
    (["-c", IN, "-o", OUT, "-save-temps"], "'-save-temps' reads or writes"),
    (["-c", IN, "-o", OUT, "-save-temps=obj"], "'-save-temps=obj' reads or writes"),
    (["-c", IN, "-o", OUT, "-fdump-tree-all"], "'-fdump-tree-all' reads or writes"),
    (["-c", IN, "-o", OUT, "-fprofile-use=x"], "'-fprofile-use=x' reads or writes"),
    (["-c", IN, "-o", OUT, "-fprofile-arcs"], "'-fprofile-arcs' reads or writes"),
    (["-c", IN, "-o", OUT, "-fauto-profile"], "'-fauto-profile' reads or writes"),
    (["-c", IN, "-o", OUT, "-fstack-usage"], "'-fstack-usage' reads or writes"),
    (["-c", IN, "-o", OUT, "-fcallgraph-info"], "'-fcallgraph-info' reads or writes"),
    (["-c", IN, "-o", OUT, "-fsave-optimization-record"], "'-fsave-optimization-record' reads"),
    (["-c", IN, "-o", OUT, "-gsplit-dwarf"], "'-gsplit-dwarf' reads or writes"),
    (["-c", IN, "-o", OUT, "-Wl,-rpath,x"], "'-Wl,-rpath,x' passes options"),
    (["-c", IN, "-o", OUT, "-Wp,-include,x"], "'-Wp,-include,x' passes options"),
    (["-c", IN, "-o", OUT, "-Wa,-adhln=listing"], "'-Wa,-adhln=listing' passes options"),
    (["-c", IN, "-o", OUT, "-Xassembler", "x"], "'-Xassembler' passes options"),
    (["-c", IN, "-o", OUT, "-Xclang", "-load"], "'-Xclang' passes options"),
    (["-c", IN, "-o", OUT, "-I/etc"], "'-I...' has a character"),
    (["-c", IN, "-o", OUT, "-include", "x"], "'-include' is not on"),
    (["-c", IN, "-o", OUT, "-imacros", "x"], "'-imacros' is not on"),
    (["-c", IN, "-o", OUT, "-Dx=1"], "'-Dx=1' is not on"),
    (["-c", IN, "-o", OUT, "-E"], "'-E' is not on"),
    (["-c", IN, "-o", OUT, "-ffoo=bar"], "'-ffoo=bar' (an option with a value)"),
    (["-c", IN, "-o", OUT, "-mfoo=bar"], "'-mfoo=bar' (an option with a value)"),
    (["-c", IN, "-o", OUT, "-fdiagnostics-format=sarif-file"], "'-fdiagnostics-format="),
    (["-c", IN, "-o", OUT, ""], "'' has a character"),
    (["-c", IN, "-o", OUT, "-O2 -wrapper"], "'-O2...' has a character"),
    (["-c", IN, "-o", OUT, "-Wall\n-wrapper"], "'-Wall...' has a character"),
    (["-c", IN, "-o", OUT, "-fvisibility=hidden/x"], "'-fvisibility=hidden...' has"),
    (["-c", IN, "-o", OUT, "-O2\u00e9"], "'-O2...' has a character"),
    (["-c", IN, "-o", OUT, "/etc/passwd"], "'...' has a character"),
    (["-c", IN, "-o", OUT, "x.c"], "'x.c' is not on"),
    (["-c", IN, "-o", OUT, "-x", "c-header"], "'-x' with a value"),
    (["-c", IN, "-o", OUT, "-x", "-wrapper"], "'-x' with a value"),
    (["-c", IN, "-o", OUT, "--param", "x=/etc"], "'--param' with a value"),
    (["-c", IN, "-o", OUT, "-target", "../x"], "'-target' with a value"),
    (["-c", IN, "-o", OUT, "-x"], "'-x' without its value"),
    (["-c", IN, "-o"], "'-o' without its value"),
    (["-c", IN, "-o", "/tmp/x.o"], "-o must name"),
    (["-c", IN, "-o", f"{JOB}/distccd_9d816c99.i"], "-o must name"),
    (["-c", IN, "-o", f"{JOB}/distccd_9d816c9.o"], "-o must name"),
    (["-c", IN, "-o", f"{JOB}/distccd_9d816c99.o/../x.o"], "-o must name"),
    (["-c", IN, "-o", f"{JOB}/sub/distccd_9d816c99.o"], "-o must name"),
    (["-c", IN, "-o", OUT, "-o", OUT], "a second -o"),
    (["-c", IN, IN_CXX, "-o", OUT], "a second input"),
    (["-c", "-o", OUT], "no input file"),
    (["-c", f"{JOB}/distccd_9dbc6c99.c", "-o", OUT], "'...' has a character"),
    (["-c", f"{JOB}/distccd_9DBC6C99.i", "-o", OUT], "'...' has a character"),
    (["-c", "/tmp/distccd_9dbc6c99.i", "-o", OUT], "'...' has a character"),
    (["-c", f"{JOB}/../jobs/distccd_9dbc6c99.i", "-o", OUT], "'...' has a character"),
    (["-c", IN], "no -o"),
    ([IN, "-o", OUT], "neither -c nor -S"),
    ([], "no input file"),
]


@pytest.mark.parametrize("arguments", REAL + ACCEPTED)
def test_accepted(arguments: list[str]) -> None:
    decision = check_job(arguments, JOB)
    assert isinstance(decision, Accepted), decision
    assert decision.output == OUT
    assert decision.input in (IN, IN_CXX)


@pytest.mark.parametrize(("arguments", "reason"), REFUSED)
def test_refused(arguments: list[str], reason: str) -> None:
    decision = check_job(arguments, JOB)
    assert isinstance(decision, Refused), decision
    assert decision.reason.startswith(reason), decision.reason
    assert "\n" not in decision.reason


def test_safe_prefix() -> None:
    assert safe_prefix("-O2") == "-O2"
    assert safe_prefix("-B/x") == "-B..."
    assert safe_prefix("@f") == "..."


def test_every_refusing_rule_is_exercised() -> None:
    # A refusal rule no table case reaches could be shadowed by an accept before it.
    refusals = {rule.refusal for rule in ARGUMENT_RULES if rule.refusal}
    reasons = " ".join(check_job(case, JOB).reason for case, _ in REFUSED)  # type: ignore[union-attr]
    assert all(refusal in reasons for refusal in refusals)


# --- the same table through the generated sh guard --------------------------------------

DASH = shutil.which("dash")


def _guard(tmp_path: Path) -> tuple[Path, Path]:
    report = tmp_path / "refusals"
    # In place of bwrap: print what would be run on which files.
    sandbox = ["/bin/sh", "-c", 'echo "ACCEPTED $1 $2"', "sandbox", INPUT_WORD, OUTPUT_WORD]
    script = tmp_path / "guard"
    script.write_text(
        render_guard(compiler_name="gcc", job_dir=JOB, report_file=str(report), sandbox=sandbox)
    )
    return script, report


def test_sh_guard_decides_as_the_classifier(tmp_path: Path) -> None:
    script, report = _guard(tmp_path)
    cases = REAL + ACCEPTED + [arguments for arguments, _ in REFUSED]
    for arguments in cases:
        expected = check_job(arguments, JOB)
        run = subprocess.run(
            [str(DASH), str(script), *arguments],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if isinstance(expected, Accepted):
            assert (run.returncode, run.stdout) == (
                0,
                f"ACCEPTED {expected.input} {expected.output}\n",
            )
            assert run.stderr == ""
        else:
            assert run.returncode == REFUSED_STATUS, (arguments, run.stdout, run.stderr)
            assert run.stderr.startswith(f"p2pcc-guard: error: {expected.reason} ("), (
                arguments,
                run.stderr,
            )
    lines = report.read_text().splitlines()
    decisions = [check_job(case, JOB) for case in cases]
    reasons = [decision.reason for decision in decisions if isinstance(decision, Refused)]
    assert [line.split(" ", 1)[1] for line in lines] == reasons


def test_sandbox_command_shape() -> None:
    argv = sandbox_argv(
        "/usr/bin/bwrap", [SystemDir("/lib", "usr/lib"), SystemDir("/opt")], JOB, "/usr/bin/gcc-12"
    )
    assert argv[0] == "/usr/bin/bwrap"
    assert {"--unshare-all", "--clearenv", "--die-with-parent"} <= set(argv)
    assert "--share-net" not in argv
    assert argv[argv.index("--symlink") + 1 : argv.index("--symlink") + 3] == ["usr/lib", "/lib"]
    assert argv[argv.index("/opt") - 1 : argv.index("/opt") + 2] == ["--ro-bind", "/opt", "/opt"]
    assert argv[-4:] == ["--chdir", JOB, "--", "/usr/bin/gcc-12"]
    assert argv[argv.index("--bind") : argv.index("--bind") + 3] == [
        "--bind",
        OUTPUT_WORD,
        OUTPUT_WORD,
    ]
    assert not any(word.startswith(("/home", "/root", "/etc/p2pcc", "/run")) for word in argv[:-4])


def test_render_refuses_bad_paths() -> None:
    with pytest.raises(ValueError, match="absolute"):
        render_guard(compiler_name="gcc", job_dir="jobs", report_file="/r", sandbox=["x"])
    with pytest.raises(ValueError, match="one line"):
        render_guard(compiler_name="gcc", job_dir="/j\nx", report_file="/r", sandbox=["x"])


def test_quote() -> None:
    assert quote("it's") == "'it'\\''s'"
