"""`-march=native`, `-mtune=native`, `-mcpu=native`: sent to a peer as the explicit flags
they mean on this machine, or not sent at all.

A peer given `-march=native` would tune for *its* CPU.  gcc's driver turns the native
flags into explicit ones before it runs `cc1` (`-march=znver3 -mavx2 … -mno-avx512f …
--param=l1-cache-size=32 … -mtune=znver3`), and puts them in front of every other option;
the daemon reads that expansion from `gcc -###` once per compiler and writes it into the
state file (`native` records), and the wrapper puts the same flags in front of the
command, without the native ones, before handing it to distcc.

The driver first drops every `-march=`/`-mtune=`/`-mcpu=` but the last of each name,
then expands the native ones; whether `-march=native` brings its tuning half depends on
an explicit `-mtune=` surviving.  So an expansion is keyed (`native_key`) by the surviving
flags in order, explicit values written `*`: `-march=native`, `-mtune=*,-march=native`.
The rewrite drops the native flags and every earlier flag of a name a native flag won.
The daemon only records an expansion after checking it: the commands
`gcc -###` prints for the rewritten flags must pass cc1 the same options as the native
ones (as a multiset: the driver places native expansions earlier on cc1's command line
than explicit flags, and ISA flags, `-march`/`-mtune` and `--param`s do not depend on
that order) and the assembler the very same ones.  Anything else (clang, whose
`-march=native` becomes `-target-feature` flags no driver option reproduces, or a
driver that fails) gets no record, and the wrapper compiles such commands locally.
`-flto` and `-frecord-gcc-switches` store the option text itself in the object, so with
native flags they stay local too.

An expansion is spliced into a command line, so it may hold only what gcc's driver
puts there: `-m` options and the cache-size `--param`s (`refused_flag`).  The daemon
checks that before it writes a record, and the wrapper again before it uses one: a
record with anything else (`-wrapper`, `-B`, `-fplugin=`, `-specs=`, `@file`, a path)
is not used, and the command compiles here with its own native flags.

Pure functions and string work only: the wrapper imports this module, and the daemon
hands `expansions` a function that runs the compiler.
"""

NATIVE_FLAGS = ("-march=native", "-mcpu=native", "-mtune=native")

#: The option names whose `native` value the driver expands.
FAMILIES = ("-march=", "-mtune=", "-mcpu=")

#: Arguments of every probe: compile nothing to nothing, print the commands instead.
PROBE_ARGS = ("-###", "-c", "-x", "c", "/dev/null", "-o", "/dev/null")

_ANY = "*"

#: The `--param`s gcc's driver adds for this CPU's caches: with `-m` options, all an
#: expansion may hold.  Their value must be a number.
CACHE_PARAMS = ("--param=l1-cache-size=", "--param=l1-cache-line-size=", "--param=l2-cache-size=")

#: What an `-m` option may be made of: names, numbers and `-march=x86-64-v3`,
#: `-mcpu=neoverse-n1+crc`-style values.  No `/`: no path can come in.
_OPTION_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,=+"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    #: Runs the compiler with PROBE_ARGS plus the given flags; its stderr, or None.
    Probe = Callable[[list[str]], str | None]


def arch_flags(args: list[str]) -> list[tuple[str, bool]]:
    """(option name, is native) of the last `-march=`/`-mtune=`/`-mcpu=` of each name, in
    command order: gcc's driver drops the earlier ones before it expands anything."""
    last: dict[str, tuple[int, bool]] = {}
    for index, arg in enumerate(args):
        if arg.startswith(FAMILIES):
            name = arg[: arg.index("=") + 1]
            last[name] = (index, arg == name + "native")
    ordered = sorted(last.items(), key=lambda item: item[1][0])
    return [(name, native) for name, (_, native) in ordered]


def native_key(args: list[str]) -> str | None:
    """The expansion key of a command: None without native flags, "" when every native
    flag is overridden by a later explicit one (nothing to expand), else the surviving
    flags in order, explicit values written `*` (`-mtune=*,-march=native`)."""
    if not any(arg in NATIVE_FLAGS for arg in args):
        return None
    flags = arch_flags(args)
    if not any(native for _, native in flags):
        return ""
    return key_of(flags)


def key_of(flags: list[tuple[str, bool]]) -> str:
    """The key of (option name, is native) pairs."""
    return ",".join(name + ("native" if native else _ANY) for name, native in flags)


def all_keys() -> list[tuple[tuple[str, bool], ...]]:
    """The flag sequences the daemon expands: one native flag, or two of different names
    with at least one native (three at once is left to compile locally)."""
    keys: list[tuple[tuple[str, bool], ...]] = [((name, True),) for name in FAMILIES]
    pairs = [(first, second) for first in FAMILIES for second in FAMILIES if first != second]
    keys += [
        ((first, one), (second, other))
        for first, second in pairs
        for one, other in ((True, True), (True, False), (False, True))
    ]
    return keys


def local_reason(args: list[str]) -> str:
    """Why a command with native flags must compile here even with an expansion, or ""."""
    for arg in args:
        if arg.startswith("-flto") or arg == "-frecord-gcc-switches":
            return f"{arg} records the option text in the object"
    return ""


def refused_flag(expansion: "tuple[str, ...] | list[str]") -> str | None:
    """The first flag of `expansion` that is neither an `-m` option nor a cache-size
    `--param` (`CACHE_PARAMS`), or None when it has none."""
    for flag in expansion:
        name, _, value = flag.rpartition("=")
        if name + "=" in CACHE_PARAMS and value.isascii() and value.isdigit():
            continue
        if flag[:2] == "-m" and flag[2:3].isalnum() and not flag[2:].strip(_OPTION_CHARS):
            continue
        return flag
    return None


def rewrite(args: list[str], expansion: tuple[str, ...] | list[str]) -> list[str]:
    """`args` with the expansion in front (where gcc's driver puts it), without any native
    flag and without the earlier flags a winning native flag overrode."""
    expanded = tuple(name for name, native in arch_flags(args) if native)
    kept = [
        arg
        for arg in args
        if arg not in NATIVE_FLAGS and not (expanded and arg.startswith(expanded))
    ]
    return [*expansion, *kept]


def expansions(probe: "Probe", tempdir: str) -> dict[str, tuple[str, ...]]:
    """Every key's checked expansion for one compiler ({} for one that has none).

    `tempdir` is the TMPDIR the probes run with: the driver's temporary file names
    there differ between runs and are ignored when commands are compared.
    """
    baseline = _commands(probe([]), tempdir)
    baseline_cc1 = _cc1(baseline or [])
    if baseline_cc1 is None:
        return {}
    fillers = _fillers(baseline_cc1)
    usable = {name for name in FAMILIES if probe([name + "native"]) is not None}
    found = {}
    for flags in all_keys():
        if not all(name in usable if native else name in fillers for name, native in flags):
            continue
        expansion = _expansion(probe, flags, fillers, tempdir)
        if expansion is not None:
            found[key_of(list(flags))] = expansion
    return found


def _fillers(baseline_cc1: list[str]) -> dict[str, str]:
    """A valid explicit flag per option name, from the defaults the driver passes cc1
    (x86: `-mcpu=` is an alias of `-mtune=`, so the default tuning serves both)."""
    fillers: dict[str, str] = {}
    for token in baseline_cc1:
        for name in FAMILIES:
            if token.startswith(name) and token != name + "native":
                fillers.setdefault(name, token)
    if "-mtune=" in fillers and "-mcpu=" not in fillers:
        fillers["-mcpu="] = "-mcpu=" + fillers["-mtune="][len("-mtune=") :]
    return fillers


def _expansion(
    probe: "Probe", flags: tuple[tuple[str, bool], ...], fillers: dict[str, str], tempdir: str
) -> tuple[str, ...] | None:
    """The checked expansion of one key, or None if no explicit flags reproduce it."""
    command = [name + "native" if native else fillers[name] for name, native in flags]
    explicit = [fillers[name] for name, native in flags if not native]
    native, base = _commands(probe(command), tempdir), _commands(probe(explicit), tempdir)
    native_cc1, base_cc1 = _cc1(native or []), _cc1(base or [])
    if native is None or native_cc1 is None or base_cc1 is None:
        return None
    expansion = _difference(native_cc1[1:], base_cc1[1:])
    if any("=native" in word for word in expansion):
        return None  # cc1 would detect the CPU itself: on a peer, the peer's
    rewritten = _commands(probe([*expansion, *explicit]), tempdir)
    if rewritten is None or not _equivalent(native, rewritten):
        return None
    return tuple(expansion)


def _difference(tokens: list[str], base: list[str]) -> list[str]:
    """`tokens` minus one occurrence of each token of `base`, in order."""
    left: dict[str, int] = {}
    for token in base:
        left[token] = left.get(token, 0) + 1
    kept = []
    for token in tokens:
        if left.get(token, 0):
            left[token] -= 1
        else:
            kept.append(token)
    return kept


def _equivalent(first: list[list[str]], second: list[list[str]]) -> bool:
    """Same programs with the same arguments; cc1's arguments compared as a multiset."""
    if len(first) != len(second):
        return False
    for one, other in zip(first, second, strict=True):
        if _is_cc1(one) and _is_cc1(other):
            if one[0] != other[0] or sorted(one) != sorted(other):
                return False
        elif one != other:
            return False
    return True


def _commands(text: str | None, tempdir: str) -> list[list[str]] | None:
    """The commands in `gcc -###` output, normalized; None when the probe failed."""
    if text is None:
        return None
    return [
        _normalize(split_command(line), tempdir)
        for line in text.splitlines()
        if line.startswith(" ")
    ]


def _normalize(argv: list[str], tempdir: str) -> list[str]:
    """`--param X` as `--param=X` (the driver prints both), temporary files as one name."""
    prefix = tempdir.rstrip("/") + "/"
    out: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        index += 1
        if word == "--param" and index < len(argv):
            word = "--param=" + argv[index]
            index += 1
        elif word.startswith(prefix) and "/" not in word[len(prefix) :]:
            word = "<temporary>"
        out.append(word)
    return out


def _cc1(commands: list[list[str]]) -> list[str] | None:
    return next((command for command in commands if _is_cc1(command)), None)


def _is_cc1(command: list[str]) -> bool:
    return bool(command) and command[0].rsplit("/", 1)[-1] in ("cc1", "cc1plus")


def split_command(line: str) -> list[str]:
    """The words of one command line as `gcc -###` prints it: blanks separate words,
    double quotes group, a backslash inside quotes escapes the next character."""
    words: list[str] = []
    word: list[str] = []
    in_word = quoted = escaped = False
    for char in line:
        if escaped:
            word.append(char)
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
            in_word = True
        elif char in " \t" and not quoted:
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        else:
            word.append(char)
            in_word = True
    if in_word:
        words.append("".join(word))
    return words


def expand(args: list[str], key: str, expansion: tuple[str, ...] | None) -> tuple[list[str], str]:
    """`args` with the native flags of `key` replaced by their recorded `expansion`, or
    why not."""
    why = local_reason(args)
    if why:
        return args, why
    if key == "":
        return rewrite(args, ()), ""
    if expansion is None:
        return args, f"no expansion of {key} known for this compiler"
    refused = refused_flag(expansion)
    if refused is not None:
        return args, f"the recorded expansion of {key} holds {refused[:40]!r}: not used"
    return rewrite(args, expansion), ""
