"""The trampoline: the `sh` script every compiler link runs first (docs/wrapper.md).

Starting Python costs more than most compiler calls of a configure step or a link stage
(`--version`, autoconf probes, `-E`, linking), and none of those can go to a peer.  The
link target is therefore a POSIX `sh` script (dash starts in about 1 ms) that settles
every call the Python wrapper would run locally anyway and execs the real compiler; it
hands everything else, and every doubt, to the Python entry next to it, which decides
again from scratch.  Its rules are not written twice: `script` generates them from
`p2pcc.wrapper.args`'s tables, and tests run the classifier's table and random argument
lists through both.

The script, in order (any "hand over" execs `python -I -S p2pcc-wrapper.py "$0" "$@"`):

1. one of its own variables set in the environment (assigning it would change what the
   compiler gets), called by its own name, or `P2PCC_VERBOSE` on: hand over;
2. `P2PCC_DISABLE` on, or `_DISTCC_SAFEGUARD` set: local; else `args.classify`'s rules,
   word by word: distributable: hand over;
3. local: the real NAME further along PATH exactly as `lookup.find_real` finds it
   (link directories, our own file under another name and one-hop symlinks to ccache or
   distcc passed over); found: exec it, as its full path, arguments untouched.  A
   symlink is judged by its target, read with `readlink` (a program: ~1 ms), unless
   install-links read it already (`known`: Debian's `cc`, `gcc`, `g++` are symlinks) and
   it still resolves to the same file.  A candidate the script cannot judge without
   doubt (a regular file it may not execute, a symlink when `readlink` is missing or
   fails, a symlink to something named ccache or distcc) and no candidate at all: hand
   over.

Not on the compile path itself: only `install-links` imports this module.
"""

import re
from pathlib import Path

from p2pcc.wrapper import args
from p2pcc.wrapper.lookup import ENTRY_NAME, MARKER, PYTHON_ENTRY_NAME, join

#: The first line: how the trampoline's text is told from an older Python entry script.
SHEBANG = "#!/bin/sh"

_TEMPLATE = r"""{shebang}
# The p2pcc compiler trampoline (docs/wrapper.md): every link in this directory runs
# this file.  It execs the real compiler for calls that cannot go to a peer, and hands
# the rest to the Python wrapper.  Written by `p2pcc install-links`; re-run it after
# changing the configuration or moving p2pcc.
_p2pcc_py() {{
  exec {python} -I -S {python_entry} "$0" "$@"
}}
case {guard}${{P2PCC_VERBOSE:-0}} in 0) ;; *) _p2pcc_py "$@" ;; esac
case ${{0##*/}} in {entry_name}) _p2pcc_py "$@" ;; esac

_p2pcc_distributable() {{
  _p2pcc_act= _p2pcc_src= _p2pcc_nout=0 _p2pcc_out= _p2pcc_w=
  for _p2pcc_a do
    if [ -n "$_p2pcc_w" ]; then
      if [ "$_p2pcc_w" = o ]; then _p2pcc_nout=$((_p2pcc_nout + 1)); _p2pcc_out=$_p2pcc_a; fi
      _p2pcc_w=
      continue
    fi
    case $_p2pcc_a in
      -c|-S) _p2pcc_act=1; continue ;;
      {local_with_argument}) return 1 ;;
      -o) _p2pcc_w=o; continue ;;
      {separate_argument}) _p2pcc_w=a; continue ;;
      {queries}|-E) return 1 ;;
      {dependency_fine}) continue ;;
      -M*) return 1 ;;
      -?*) ;;
      -|@*) return 1 ;;
      {sources})
        case ${{_p2pcc_a##*/}} in {conftest}) return 1 ;; esac
        [ -z "$_p2pcc_src" ] || return 1
        _p2pcc_src=1
        continue ;;
      *) return 1 ;;
    esac
{containing}    case $_p2pcc_a in {dump}*) ;; -d?*) return 1 ;; esac
    case $_p2pcc_a in {prefixes}) return 1 ;; esac
    case $_p2pcc_a in -o*) _p2pcc_nout=$((_p2pcc_nout + 1)); _p2pcc_out=${{_p2pcc_a#-o}} ;; esac
  done
  [ -z "$_p2pcc_w" ] && [ -n "$_p2pcc_act" ] && [ -n "$_p2pcc_src" ] || return 1
  [ "$_p2pcc_nout" -le 1 ] || return 1
  [ "$_p2pcc_nout" = 0 ] && return 0
  case $_p2pcc_out in -) return 1 ;; esac
  case ${{_p2pcc_out##*/}} in {conftest}) return 1 ;; esac
  return 0
}}

case ${{P2PCC_DISABLE:-0}}${{_DISTCC_SAFEGUARD+set}} in
  0) if _p2pcc_distributable "$@"; then _p2pcc_py "$@"; fi ;;
esac

_p2pcc_n=${{0##*/}}
_p2pcc_rest=${{PATH-/bin:/usr/bin}}
while :; do
  _p2pcc_d=${{_p2pcc_rest%%:*}}
  _p2pcc_d=${{_p2pcc_d:-.}}
  case $_p2pcc_d in */) ;; *) _p2pcc_d=$_p2pcc_d/ ;; esac
  _p2pcc_c=$_p2pcc_d$_p2pcc_n
  if [ -f "$_p2pcc_c" ] && [ ! -e "$_p2pcc_d"{marker} ] && ! [ "$_p2pcc_c" -ef {own} ]; then
    [ -x "$_p2pcc_c" ] || _p2pcc_py "$@"
    if [ -h "$_p2pcc_c" ]; then
      case $_p2pcc_c in
{known}        *) _p2pcc_r= ;;
      esac
      if [ -z "$_p2pcc_r" ] || ! [ "$_p2pcc_c" -ef "$_p2pcc_r" ]; then
{symlink}      fi
    fi
    exec "$_p2pcc_c" "$@"
  fi
  case $_p2pcc_rest in *:*) _p2pcc_rest=${{_p2pcc_rest#*:}} ;; *) break ;; esac
done
_p2pcc_py "$@"
"""

#: How a symlink candidate is judged: its one-hop target, read with `readlink`.
_READ_LINK = """\
        _p2pcc_t=$({readlink} -- "$_p2pcc_c" 2>/dev/null) || _p2pcc_py "$@"
        case ${{_p2pcc_t##*/}} in {masquerades}) _p2pcc_py "$@" ;; esac
"""

#: Without `readlink` a symlink candidate cannot be judged.
_NO_READ_LINK = '        _p2pcc_py "$@"\n'


def quote(word: str) -> str:
    """`word` as one literal sh word (single quotes; a quote inside closed and escaped)."""
    return "'" + word.replace("'", "'\\''") + "'"


def _alternatives(words: "list[str] | tuple[str, ...] | frozenset[str]", star: str = "") -> str:
    """A case pattern matching each of `words` literally (`star` "prefix": as a prefix,
    "suffix": as a suffix)."""
    quoted = [quote(word) for word in sorted(words)]
    if star == "prefix":
        quoted = [f"{word}*" for word in quoted]
    elif star == "suffix":
        quoted = [f"*{word}" for word in quoted]
    return "|".join(quoted)


def _containing() -> str:
    """One case per `args.LOCAL_CONTAINING` rule: the prefix, then any part anywhere."""
    lines = []
    for prefix, parts, _ in args.LOCAL_CONTAINING:
        inner = "|".join(f"*{quote(part)}*" for part in parts)
        lines.append(
            f"    case $_p2pcc_a in {quote(prefix)}*) "
            f"case $_p2pcc_a in {inner}) return 1 ;; esac ;; esac\n"
        )
    return "".join(lines)


def _own_variables(text: str) -> list[str]:
    """The names of the script's own variables (`_p2pcc_x`, not its functions)."""
    names = set(re.findall(r"_p2pcc_(\w+)", text)) - {"py", "distributable"}
    return sorted(names)


def script(
    link_dir: str, python: str, readlink: str | None, known: "dict[str, str] | None" = None
) -> str:
    """The trampoline of the link directory `link_dir`, handing over to `python`, judging
    symlink candidates with the `readlink` program at that path (None: cannot), but for
    the `known` ones (path on PATH -> the file it resolved to when its target was read at
    install time), trusted while they still resolve to that file."""
    known_cases = "".join(
        f"        {quote(path)}) _p2pcc_r={quote(real)} ;;\n"
        for path, real in sorted((known or {}).items())
    )
    symlink = _NO_READ_LINK
    if readlink:
        masquerades = _alternatives(("ccache", "distcc"))
        symlink = _READ_LINK.format(readlink=quote(readlink), masquerades=masquerades)
    fields = {
        "shebang": SHEBANG,
        "python": quote(python),
        "python_entry": quote(join(link_dir, PYTHON_ENTRY_NAME)),
        "entry_name": quote(ENTRY_NAME),
        "local_with_argument": _alternatives(tuple(args.LOCAL_WITH_ARGUMENT)),
        "separate_argument": _alternatives(
            args.SEPARATE_ARGUMENT - args.LOCAL_WITH_ARGUMENT.keys() - {"-o"}
        ),
        "queries": _alternatives(args.QUERIES),
        "dependency_fine": _alternatives(args.DEPENDENCY_MODIFIERS)
        + "|"
        + _alternatives(args.DEPENDENCY_JOINED, "prefix"),
        "sources": _alternatives([f".{ext}" for ext in args.SOURCE_EXTENSIONS], "suffix"),
        "conftest": _alternatives(args.CONFTEST_PREFIXES, "prefix"),
        "containing": _containing(),
        "dump": quote(args.DUMP_QUERIES),
        "prefixes": _alternatives([prefix for prefix, _ in args.LOCAL_PREFIXES], "prefix"),
        "marker": quote(MARKER),
        "own": quote(join(link_dir, ENTRY_NAME)),
        "symlink": symlink,
        "known": known_cases,
        "guard": "",
    }
    # `${_p2pcc_a+1}…`: empty unless one of the script's own variables came from the
    # environment, where the shell would export our value of it to the compiler.
    names = _own_variables(_TEMPLATE.format(**fields))
    fields["guard"] = "".join(f"${{_p2pcc_{name}+1}}" for name in names)
    return _TEMPLATE.format(**fields)


def is_trampoline(link_dir: Path) -> bool:
    """Whether the links of `link_dir` lead to a trampoline (not an older p2pcc's Python
    entry script) with its Python entry next to it."""
    try:
        with (link_dir / ENTRY_NAME).open("rb") as file:
            first = file.readline().rstrip(b"\n")
    except OSError:
        return False
    return first == SHEBANG.encode() and (link_dir / PYTHON_ENTRY_NAME).is_file()
