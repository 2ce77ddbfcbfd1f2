"""Whether one compiler command line may be sent to a peer, and if not, why.

A command is distributable when it compiles exactly one C or C++ source to an object
(`-c`) or to assembly (`-S`) and nothing in it depends on files or effects that only
exist on this machine.  The rules follow distcc's own (`arg.c`: what its client would run
locally anyway) and go further where distcc would send a job that fails on the peer or
quietly builds something else:

* not a compile at all: linking, `-E`, `-M`/`-MM` without `-MD`/`-MMD`, `-fsyntax-only`,
  queries (`--version`, `-v`, `-###`, `-dump*`, `-print-*`, `--help`);
* several sources, no source, `-` (stdin), `@file` response files, `-o -`, an input
  that is not a C/C++ source (objects, assembly, headers, Objective-C), autoconf's
  `conftest.*`, `-x` (distcc does not follow it);
* outputs besides the object that a peer would write into its own temporary directory:
  `-save-temps`, `-fdump-*`, `-d<letters>`, `-gsplit-dwarf`, `-fstack-usage`,
  `-fcallgraph-info`, `-aux-info`, `-ftime-trace`, `-fsave-optimization-record`,
  `-fopt-info…=file`, assembler listings (`-Wa,-a…`), `-MJ`;
* inputs besides the source that the peer does not have: profile data and coverage
  (`-fprofile-*`, `-fauto-profile`, `-fbranch-probabilities`, `--coverage`,
  `-ftest-coverage`), sanitizer and XRay lists, modules and precompiled headers
  (`-fmodule*`, `-include-pch`, `-fpch-preprocess`), other compiler parts (`-B`,
  `-wrapper`), and what distccd refuses outright and would bench the peer for 60 s
  over: `-fplugin=…`, `-specs=…` (also `-Xclang`, which can load plugins), and what a
  peer's job guard refuses although distcc passes it on (`--sysroot`, `-Xlinker`,
  `-Xassembler`, `-Xpreprocessor`; docs/distccd.md, "The job guard and sandbox").

An option whose argument is a separate word (`-o out.o`, `-I dir`, `-MF deps.d` …) must
be listed in SEPARATE_ARGUMENT, or its argument would be taken for an input file; an
unknown word is an unknown input, which keeps the command local: every doubt resolves
to "compile here".  Imports nothing: this runs on every compiler call.
"""

#: Extensions gcc compiles as C or C++ (`.i`/`.ii`: already preprocessed).
SOURCE_EXTENSIONS = frozenset(("c", "i", "ii", "cc", "cp", "cpp", "cxx", "c++", "C", "CPP"))

#: Options whose argument is the next word.
SEPARATE_ARGUMENT = frozenset(
    (
        "-o", "-I", "-D", "-U", "-include", "-imacros", "-isystem", "-idirafter",
        "-iprefix", "-iwithprefix", "-iwithprefixbefore", "-iquote", "-isysroot",
        "-imultilib", "-imultiarch", "-MF", "-MT", "-MQ", "-L", "-l", "-T", "-u", "-z",
        "-Xpreprocessor", "-Xassembler", "-Xlinker", "--param", "-G", "-A", "-e",
        "-dumpbase", "-dumpbase-ext", "-dumpdir", "--sysroot", "-target", "--target",
        "-arch", "-mllvm", "-gcc-toolchain", "--gcc-toolchain", "-resource-dir",
        "-cxx-isystem", "-isystem-after", "-ivfsoverlay",
    )
)  # fmt: skip

_GUARD_REFUSES = "a peer's job guard refuses it (the peer would be benched for 60 s)"

#: Options that take the next word and force a local compile, with why.
LOCAL_WITH_ARGUMENT = {
    "-x": "-x changes the language (distcc does not follow it)",
    "-B": "-B names other compiler parts, which the peer does not have",
    "-specs": "distccd refuses -specs (the peer would be benched for 60 s)",
    "--specs": "distccd refuses -specs (the peer would be benched for 60 s)",
    "-wrapper": "-wrapper runs a program of this machine",
    "-include-pch": "precompiled headers exist only here",
    "-Xclang": "-Xclang can load plugins and write files",
    "-MJ": "-MJ writes a compilation database entry",
    "-aux-info": "-aux-info writes a file besides the object",
    # Refused by a peer's job guard (p2pcc.core.job_guard), which benches it for 60 s.
    "--sysroot": _GUARD_REFUSES,
    "-Xlinker": _GUARD_REFUSES,
    "-Xassembler": _GUARD_REFUSES,
    "-Xpreprocessor": _GUARD_REFUSES,
}

#: Queries: the compiler prints something and compiles nothing.
QUERIES = frozenset(
    (
        "--version", "-v", "-###", "--help", "--target-help", "-dumpversion",
        "-dumpfullversion", "-dumpmachine", "-dumpspecs", "-qversion", "-Q",
    )
)  # fmt: skip

#: Option prefixes that force a local compile, with why (checked in order).
LOCAL_PREFIXES = (
    ("-print-", "a query"),
    ("--print-", "a query"),
    ("--help=", "a query"),
    ("-fplugin", "distccd refuses -fplugin (the peer would be benched for 60 s)"),
    ("-iplugindir", "plugins exist only here"),
    ("-specs=", "distccd refuses -specs (the peer would be benched for 60 s)"),
    ("--specs=", "distccd refuses -specs (the peer would be benched for 60 s)"),
    ("-B", "-B names other compiler parts, which the peer does not have"),
    ("-x", "-x changes the language (distcc does not follow it)"),
    ("-fprofile", "profile data and instrumentation paths belong to this machine"),
    ("-fauto-profile", "profile data exists only here"),
    ("-fbranch-probabilities", "profile data exists only here"),
    ("-ftest-coverage", "coverage notes are written besides the object"),
    ("--coverage", "coverage notes are written besides the object"),
    ("-fcoverage", "coverage belongs to this machine"),
    ("-save-temps", "-save-temps writes files besides the object"),
    ("-fdump-", "-fdump-* writes files besides the object"),
    ("-gsplit-dwarf", "-gsplit-dwarf writes a .dwo besides the object"),
    ("-fstack-usage", "-fstack-usage writes a .su besides the object"),
    ("-fcallgraph-info", "-fcallgraph-info writes a file besides the object"),
    ("-ftime-trace", "-ftime-trace writes a file besides the object"),
    ("-fsave-optimization-record", "writes a file besides the object"),
    ("-fdiagnostics-format=sarif-file", "writes a file besides the object"),
    ("-fdiagnostics-format=json-file", "writes a file besides the object"),
    ("-fmodule", "modules are built and found on this machine"),
    ("-fprebuilt-module-path", "modules are built and found on this machine"),
    ("-fpch-preprocess", "precompiled headers exist only here"),
    ("-fxray-attr-list", "reads a file of this machine"),
    ("-fxray-always-instrument", "reads a file of this machine"),
    ("-fxray-never-instrument", "reads a file of this machine"),
    ("-frepo", "-frepo writes .rpo files besides the object"),
    ("-fsyntax-only", "no object to make"),
    ("--sysroot=", _GUARD_REFUSES),
)

#: Options that force a local compile when they start with the prefix and hold one of
#: the parts anywhere, with why.
LOCAL_CONTAINING = (
    (
        "-Wa,",
        (",-a", "--MD"),  # assembler listings and dependency files
        "an assembler listing or dependency file is written besides the object",
    ),
    ("-fopt-info", ("=",), "-fopt-info writes a file besides the object"),
    ("-fsanitize", ("list=",), "a sanitizer list file exists only here"),
)

#: `-M…` options that only modify the dependency output of -MD/-MMD (take no word).
DEPENDENCY_MODIFIERS = frozenset(("-MD", "-MMD", "-MG", "-MP"))

#: `-M…` options with their argument joined (`-MFdeps.d`): fine, like the modifiers.
DEPENDENCY_JOINED = ("-MF", "-MT", "-MQ")

#: How autoconf (and libtool) name their probes' files.
CONFTEST_PREFIXES = ("conftest.", "tmp.conftest.")

#: `-d…` options that are not compiler dumps (`-dumpmachine`, `-dumpbase`…).
DUMP_QUERIES = "-dump"


def classify(args: list[str]) -> tuple[bool, str]:
    """(True, "compile") when `args` (without argv[0]) may go to a peer, else (False, why)."""
    if "-c" not in args and "-S" not in args:  # link steps and queries: the fast way out
        return False, "not a compile (no -c or -S): linking or a query"
    sources: list[str] = []
    outputs: list[str] = []
    action = ""
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if not arg.startswith("-") or arg == "-":
            why = _input_problem(arg, sources)
            if why:
                return False, why
            continue
        if arg in ("-c", "-S"):
            action = action or arg
            continue
        if arg in SEPARATE_ARGUMENT or arg in LOCAL_WITH_ARGUMENT:
            if index >= len(args):
                return False, f"{arg} without its argument"
            value = args[index]
            index += 1
            why = LOCAL_WITH_ARGUMENT.get(arg, "")
            if why:
                return False, why
            if arg == "-o":
                outputs.append(value)
            continue
        why = _option_problem(arg)
        if why:
            return False, why
        if arg.startswith("-o"):
            outputs.append(arg[2:])
    return _verdict(action, sources, outputs)


def _input_problem(arg: str, sources: list[str]) -> str:
    """Why a non-option word keeps the command local ("" if it is a C/C++ source)."""
    if arg == "-":
        return "reads the source from stdin"
    if arg.startswith("@"):
        return "a response file (@file) hides the arguments"
    if not is_source(arg):
        return f"input {arg!r} is not a C/C++ source (linking, assembly or another language)"
    if _is_conftest(arg):
        return "an autoconf probe (conftest.*)"
    sources.append(arg)
    if len(sources) > 1:
        return "several sources in one command"
    return ""


def _option_problem(arg: str) -> str:
    """Why an option (joined form or argument-less) keeps the command local, or ""."""
    if arg in QUERIES:
        return "a query, not a compile"
    if arg == "-E":
        return "-E only preprocesses"
    if arg.startswith("-M"):
        return _dependency_problem(arg)
    return _special_problem(arg) or next(
        (why for prefix, why in LOCAL_PREFIXES if arg.startswith(prefix)), ""
    )


def _special_problem(arg: str) -> str:
    """Local-forcing options that a prefix alone does not describe."""
    for prefix, parts, why in LOCAL_CONTAINING:
        if arg.startswith(prefix) and any(part in arg for part in parts):
            return why
    if arg.startswith("-d") and len(arg) > 2 and not arg.startswith(DUMP_QUERIES):
        return f"{arg} writes compiler dumps besides the object"
    return ""


def _dependency_problem(arg: str) -> str:
    if arg in DEPENDENCY_MODIFIERS or arg.startswith(DEPENDENCY_JOINED):
        return ""
    if arg.startswith("-MJ"):
        return LOCAL_WITH_ARGUMENT["-MJ"]
    return f"{arg} lists dependencies instead of compiling"


def _verdict(action: str, sources: list[str], outputs: list[str]) -> tuple[bool, str]:
    if not action:
        return False, "not a compile (no -c or -S): linking or a probe"
    if not sources:
        return False, "no C/C++ source to compile"
    if len(outputs) > 1:
        return False, "several -o outputs"
    if outputs and outputs[0] == "-":
        return False, "writes the object to stdout (-o -)"
    if outputs and _is_conftest(outputs[0]):
        return False, "an autoconf probe (conftest.*)"
    return True, "compile"


def is_source(path: str) -> bool:
    """Whether `path` names a C or C++ source by its extension."""
    base = path.rsplit("/", 1)[-1]
    _, dot, extension = base.rpartition(".")
    return bool(dot) and extension in SOURCE_EXTENSIONS


def _is_conftest(path: str) -> bool:
    base = path.rsplit("/", 1)[-1]
    return base.startswith(CONFTEST_PREFIXES)
