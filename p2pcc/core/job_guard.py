"""Which command lines a served job may run: the allowlist, as data, and its classifier.

distccd 3.4 runs whatever options a client sends (`-wrapper` runs any program,
`-fplugin=` loads one, `-B` and `-specs=` pick other programs, `@file` reads options
from a file), so p2pcc puts a guard between distccd and every compiler.  distccd
compiles a job as `COMPILER [options] -o JOB/distccd_XXXXXXXX.o JOB/distccd_XXXXXXXX.i`
with JOB its temporary directory; the guard accepts exactly that shape and options on
an allowlist of code-generation, warning, diagnostic, language and debug-info forms.

The rules are sh `case` patterns (literals, `*`, `[...]`, `[!...]`), so that the guard
distccd executes — a POSIX sh script rendered from these very rules by
`p2pcc.daemon.distccd.guard_files`, since a Python start costs more than the whole
per-job budget — and `check_job` here decide alike; a test runs every case of its table
through both.  Rules are tried in order and the first match decides; an argument no
rule accepts is refused.  A refusal's reason names the argument up to its first
character outside `SAFE_CHARS`, so a reason is always one harmless line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: The exit status of a refused job (a compiler exits 1 on errors, 4 on crashes).
REFUSED_STATUS = 87

#: The only characters an option may contain (a job file or a prefix map excepted).
SAFE_CHARS = "A-Za-z0-9_=+.,:-"

#: distccd's job files: `%s/distccd_%08lx%s` (distcc 3.4 `dcc_make_tmpnam`).
_HEX8 = "[0-9a-f]" * 8
#: The extensions distccd gives a job's input (`dcc_preproc_exten`).
INPUT_EXTENSIONS = ("i", "ii", "mi", "mii", "s")
#: A placeholder for the job directory in a pattern (quoted in sh, escaped in Python).
JOB = "{job}"


@dataclass(frozen=True, slots=True)
class Rule:
    """An argument matching `pattern` is accepted, or refused when `refusal` is set."""

    pattern: str
    refusal: str | None = None


def _accept(*patterns: str) -> list[Rule]:
    return [Rule(pattern) for pattern in patterns]


def _refuse(reason: str, *patterns: str) -> list[Rule]:
    return [Rule(pattern, reason) for pattern in patterns]


_NOT_ALLOWED = "is not on the job guard's allowlist"
_FILES = "reads or writes files outside the job"

#: Options with a value (`-fNAME=VALUE`) accepted by name; any other needs a number.
_F_VALUES = (
    "visibility", "diagnostics-color", "diagnostics-urls", "diagnostics-column-unit",
    "diagnostics-path-format", "sanitize", "no-sanitize", "sanitize-recover",
    "no-sanitize-recover", "sanitize-trap", "no-sanitize-trap", "tls-model",
    "cf-protection", "zero-call-used-regs", "lto", "lto-partition", "exec-charset",
    "input-charset", "wide-exec-charset", "excess-precision", "fp-contract", "fp-model",
    "permitted-flt-eval-methods", "trivial-auto-var-init", "strong-eval-order",
    "stack-check", "vect-cost-model", "simd-cost-model", "ira-algorithm", "ira-region",
    "ms-compatibility-version", "debug-default-version", "lax-vector-conversions", "use-ld",
)  # fmt: skip
_M_VALUES = (
    "arch", "tune", "cpu", "fpmath", "abi", "cmodel", "tls-dialect", "prefer-vector-width",
    "branch-protection", "float-abi", "fpu", "indirect-branch", "function-return",
    "stack-protector-guard", "stack-protector-guard-reg", "stack-protector-guard-offset",
    "large-data-threshold", "align-data", "dynamic-no-pic", "code-model", "isa-spec",
)  # fmt: skip

#: Options that make the compiler read or write files other than the job's own.
_FILE_OPTIONS = (
    "-fdump-*", "-fprofile*", "-fauto-profile*", "-fbranch-probabilities", "-fcreate-profile*",
    "-ftest-coverage", "-fcoverage*", "-fsave-optimization-record*", "-fcallgraph-info*",
    "-fstack-usage", "-fopt-info*", "-fsanitize-*list*", "-fxray-*list*",
    "-fcrash-diagnostics*", "-fmodules*", "-fmodule-*", "-gsplit-dwarf*", "-save-temps*",
    "-fdiagnostics-format=*file*",
)  # fmt: skip

#: Link options the distcc client passes on; a compile (-c, -S) ignores them.
_LINK_ONLY = (
    "-rdynamic", "-static", "-shared", "-pie", "-no-pie", "-static-pie", "-static-libgcc",
    "-static-libstdc++", "-nostdlib", "-nodefaultlibs", "-nostartfiles", "-nostdinc",
    "-nostdinc++", "-s",
)  # fmt: skip

#: The rules for an argument that is not the job's input, `-o`, `-c`/`-S` or an
#: option with a separate value (see `check_job`), in order.
ARGUMENT_RULES: tuple[Rule, ...] = tuple(
    # Prefix maps only rewrite file names the compiler writes into the object.
    _accept("-fdebug-prefix-map=*", "-ffile-prefix-map=*", "-fmacro-prefix-map=*")
    + _refuse(f"has a character outside [{SAFE_CHARS}]", f"*[!{SAFE_CHARS}]*", "")
    + _refuse("loads a compiler plugin", "-fplugin*", "-iplugindir*")
    + _refuse(_FILES, *_FILE_OPTIONS)
    + _accept("-O", "-O[0-3sgz]", "-Ofast")
    + _accept("-g*", "-std=*", "-ansi", "-pedantic", "-pedantic-errors", "-w", "-pthread")
    + _accept("-pipe", "-fsyntax-only", "--target=*", "--param=[a-z]*=[0-9]*")
    + _accept(*_LINK_ONLY)
    + _accept("-Wa,--noexecstack", "-Wa,--compress-debug-sections*", "-Wa,-mrelax-relocations=*")
    + _refuse("passes options to another program", "-W[alp],*", "-X*")
    + _accept("-W[A-Za-z]*")
    + _accept(*(f"-f{name}=*" for name in _F_VALUES), "-f[a-z]*=[0-9]*")
    + _accept(*(f"-m{name}=*" for name in _M_VALUES))
    + _refuse(f"(an option with a value) {_NOT_ALLOWED}", "-f*=*", "-m*=*")
    + _accept("-f[A-Za-z]*", "-m[A-Za-z0-9]*")
)

#: `-x` languages: what a client may say its preprocessed input is.
LANGUAGES = (
    "c", "c++", "cpp-output", "c++-cpp-output", "objective-c", "objective-c++",
    "objective-c-cpp-output", "objective-c++-cpp-output", "assembler",
    "assembler-with-cpp", "none",
)  # fmt: skip

#: Options whose value is the next argument: the value's rules (a miss is refused).
VALUE_RULES: dict[str, tuple[Rule, ...]] = {
    "-x": tuple(_accept(*LANGUAGES)),
    "--param": tuple(_accept("[a-z]*=[0-9]*")),
    "-target": tuple(_accept("[a-z0-9_]*-*")),
}

#: distccd's input and output files in the job directory.
INPUT_PATTERNS = tuple(f"{JOB}/distccd_{_HEX8}.{extension}" for extension in INPUT_EXTENSIONS)
OUTPUT_PATTERN = f"{JOB}/distccd_{_HEX8}.o"

#: The refusals `check_job` makes about the command line's shape.
NO_INPUT = "no input file of distccd's in the job directory"
SECOND_INPUT = "a second input file"
BAD_OUTPUT = "-o must name distccd's output file in the job directory"
SECOND_OUTPUT = "a second -o"
NO_OUTPUT = "no -o"
NOT_COMPILE = "neither -c nor -S: only compiling runs on a pool server"


def missing_value(option: str) -> str:
    return f"'{option}' without its value"


def bad_value(option: str) -> str:
    return f"'{option}' with a value {_NOT_ALLOWED}"


@dataclass(frozen=True, slots=True)
class Accepted:
    """The job may run: the compiler reads `input` and writes `output`."""

    input: str
    output: str


@dataclass(frozen=True, slots=True)
class Refused:
    """The job may not run, for `reason` (one line of safe characters)."""

    reason: str


def safe_prefix(argument: str) -> str:
    """`argument` up to its first character outside SAFE_CHARS, "..." marking a cut."""
    prefix = _SAFE_PREFIX.match(argument)
    kept = prefix.group() if prefix else ""
    return kept if kept == argument else kept + "..."


_SAFE_PREFIX = re.compile(f"[{SAFE_CHARS}]*")


def check_job(arguments: Sequence[str], job_dir: str) -> Accepted | Refused:
    """Whether distccd may run the compiler with `arguments` (those after its name)."""
    compiles = False
    found: dict[str, str] = {}
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        index += 1
        if argument in ("-o", *VALUE_RULES):
            if index == len(arguments):
                return Refused(missing_value(argument))
            value = arguments[index]
            index += 1
            refusal = _check_value(argument, value, job_dir, found)
        elif argument in ("-c", "-S"):
            compiles = True
            continue
        elif any(_matches(pattern, argument, job_dir) for pattern in INPUT_PATTERNS):
            refusal = SECOND_INPUT if "input" in found else None
            found["input"] = argument
        else:
            refusal = _check_argument(argument, ARGUMENT_RULES, job_dir)
        if refusal is not None:
            return Refused(refusal)
    return _check_shape(compiles, found)


def _check_value(option: str, value: str, job_dir: str, found: dict[str, str]) -> str | None:
    if option == "-o":
        if not _matches(OUTPUT_PATTERN, value, job_dir):
            return BAD_OUTPUT
        if "output" in found:
            return SECOND_OUTPUT
        found["output"] = value
        return None
    rule = _first_match(VALUE_RULES[option], value, job_dir)
    return None if rule is not None and rule.refusal is None else bad_value(option)


def _check_argument(argument: str, rules: Sequence[Rule], job_dir: str) -> str | None:
    rule = _first_match(rules, argument, job_dir)
    why = _NOT_ALLOWED if rule is None else rule.refusal
    return None if why is None else f"'{safe_prefix(argument)}' {why}"


def _check_shape(compiles: bool, found: dict[str, str]) -> Accepted | Refused:
    if "input" not in found:
        return Refused(NO_INPUT)
    if "output" not in found:
        return Refused(NO_OUTPUT)
    if not compiles:
        return Refused(NOT_COMPILE)
    return Accepted(found["input"], found["output"])


def _first_match(rules: Sequence[Rule], argument: str, job_dir: str) -> Rule | None:
    return next((rule for rule in rules if _matches(rule.pattern, argument, job_dir)), None)


def _matches(pattern: str, argument: str, job_dir: str) -> bool:
    return glob_regex(pattern, job_dir).fullmatch(argument) is not None


_REGEX_CACHE: dict[tuple[str, str], re.Pattern[str]] = {}


def glob_regex(pattern: str, job_dir: str) -> re.Pattern[str]:
    """The regular expression an sh `case` pattern of the rules' subset matches like."""
    key = (pattern, job_dir)
    if key not in _REGEX_CACHE:
        head, sep, tail = pattern.partition(JOB)
        text = re.escape(job_dir).join((_translate(head), _translate(tail))) if sep else ""
        _REGEX_CACHE[key] = re.compile(text if sep else _translate(pattern), re.DOTALL)
    return _REGEX_CACHE[key]


def _translate(glob: str) -> str:
    out = []
    index = 0
    while index < len(glob):
        char = glob[index]
        index += 1
        if char == "*":
            out.append(".*")
        elif char == "[":
            end = glob.index("]", index)
            body = glob[index:end]
            index = end + 1
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
        else:
            out.append(re.escape(char))
    return "".join(out)


#: What a rendered pattern may contain besides the job directory (quoted apart).
PATTERN_CHARS = re.compile(r"[A-Za-z0-9_=+.,:/*!\[\]{}-]*")
