"""Shell completion in contrib/: in step with the CLI's parser, and working in a real bash.

The command and option lists are derived from `p2pcc.cli.build_parser()`, so a command or
option added to (or removed from) the CLI without its completion fails here.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from p2pcc.cli import build_parser
from p2pcc.core.durations import parse_duration

ROOT = Path(__file__).resolve().parent.parent
BASH_FILE = ROOT / "contrib" / "bash_completion" / "p2pcc"
ZSH_FILE = ROOT / "contrib" / "zsh" / "_p2pcc"
GLOBAL_OPTIONS = {"-h", "--help", "--version"}


def parser_options() -> dict[str, set[str]]:
    """Each command of the real CLI and its option strings."""
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        name: {option for action in command._actions for option in action.option_strings}
        for name, command in sub.choices.items()
    }


def bash_complete(*words: str, cwd: Path = ROOT, path: str | None = None) -> list[str]:
    """What the completion offers for the command line `words` (the last one being typed)."""
    script = (
        f'source "{BASH_FILE}"\n'
        + (f'PATH="{path}"\n' if path is not None else "")
        + 'COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))\n'
        + '_p2pcc\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script, "bash", *words],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    assert result.stderr == ""
    return [line for line in result.stdout.splitlines() if line]


def bash_options(command: str) -> set[str]:
    return set(bash_complete("p2pcc", command, "-"))


# --- bash -----------------------------------------------------------------------------------


def test_bash_offers_every_command_of_the_cli_and_no_other() -> None:
    offered = set(bash_complete("p2pcc", ""))
    commands = set(parser_options())
    assert commands <= offered, f"no bash completion for {sorted(commands - offered)}"
    assert offered <= commands, f"completed but not a command: {sorted(offered - commands)}"


def test_bash_offers_exactly_each_commands_options() -> None:
    for command, options in parser_options().items():
        assert bash_options(command) == options, command


def test_bash_global_options_and_prefixes() -> None:
    assert set(bash_complete("p2pcc", "-")) == GLOBAL_OPTIONS
    assert bash_complete("p2pcc", "st") == ["status"]
    assert bash_complete("p2pcc", "status", "--j") == ["--json"]
    assert bash_complete("p2pcc", "status", "--json", "--w") == ["--watch"]


@pytest.fixture
def compilers_on_path(tmp_path: Path) -> str:
    """A PATH whose first directory holds made-up compilers and one program that is not."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ["gcc-42", "g++-42", "x86_64-linux-gnu-gcc-42", "clang++-42", "gccgo-42"]:
        program = bin_dir / name
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


@pytest.mark.parametrize("command", ["fingerprint", "hosts", "jobs"])
def test_bash_completes_compiler_names_on_path(compilers_on_path: str, command: str) -> None:
    assert bash_complete("p2pcc", command, "gcc-4", path=compilers_on_path) == ["gcc-42"]
    assert bash_complete("p2pcc", command, "g++-4", path=compilers_on_path) == ["g++-42"]
    assert bash_complete("p2pcc", command, "x86_64-linux-gnu-gcc-4", path=compilers_on_path) == [
        "x86_64-linux-gnu-gcc-42"
    ]
    assert bash_complete("p2pcc", command, "clang++-4", path=compilers_on_path) == ["clang++-42"]
    # gccgo is no C or C++ compiler p2pcc handles.
    assert bash_complete("p2pcc", command, "gccgo", path=compilers_on_path) == []


def test_bash_completes_the_real_compilers_of_this_machine() -> None:
    installed = {name for name in ("gcc-12", "gcc-11") if shutil.which(name)}
    assert installed, "this test needs gcc-11 or gcc-12 on PATH"
    assert installed <= set(bash_complete("p2pcc", "fingerprint", "gcc-1"))


def test_bash_completes_a_compiler_path_as_a_file(tmp_path: Path) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "my-gcc").write_text("")
    assert bash_complete("p2pcc", "fingerprint", "tools/my", cwd=tmp_path) == ["tools/my-gcc"]


def test_bash_completes_files_for_config_and_output(tmp_path: Path) -> None:
    (tmp_path / "p2pcc.toml").write_text("")
    (tmp_path / "keys").mkdir()
    for words in (
        ("status", "--config"),
        ("daemon", "--config"),
        ("keygen", "-o"),
        ("keygen", "--output"),
        ("status", "--config", "="),  # --config=FILE, which bash splits at "="
    ):
        assert sorted(bash_complete("p2pcc", *words, "", cwd=tmp_path)) == ["keys", "p2pcc.toml"]


def test_bash_completes_only_directories_for_install_links(tmp_path: Path) -> None:
    (tmp_path / "links").mkdir()
    (tmp_path / "linked.txt").write_text("")
    assert bash_complete("p2pcc", "install-links", "lin", cwd=tmp_path) == ["links"]


def test_bash_suggests_durations_the_pause_command_accepts() -> None:
    suggested = bash_complete("p2pcc", "pause", "--for", "")
    assert suggested
    now = datetime.now(UTC)
    for duration in suggested:
        assert parse_duration(duration, now) > 0
    assert bash_complete("p2pcc", "pause", "--reason", "") == []


def test_bash_completes_the_build_command_then_hands_over(
    compilers_on_path: str, tmp_path: Path
) -> None:
    assert bash_complete("p2pcc", "build", "gcc-4", path=compilers_on_path) == ["gcc-42"]
    assert set(bash_complete("p2pcc", "build", "--c")) == {"--config", "--compiler"}
    assert bash_complete("p2pcc", "build", "--compiler", "gcc-4", path=compilers_on_path) == [
        "gcc-42"
    ]
    (tmp_path / "Makefile").write_text("")
    (tmp_path / "links").mkdir()
    assert bash_complete("p2pcc", "build", "--links", "li", cwd=tmp_path) == ["links"]
    # Without bash-completion loaded, the build command's own words complete as files,
    # and the values of build's options are not taken for the build command.
    for before in ([], ["--links", "links"], ["--compiler", "cc", "--config", "x.toml"]):
        words = ("p2pcc", "build", *before, "make", "Make")
        assert bash_complete(*words, cwd=tmp_path) == ["Makefile"], before


# --- zsh ------------------------------------------------------------------------------------


def zsh_text() -> str:
    return ZSH_FILE.read_text()


def zsh_commands() -> set[str]:
    block = re.search(r"subcommands=\(\n(.*?)\n\s*\)", zsh_text(), re.DOTALL)
    assert block is not None
    return set(re.findall(r"^\s*'([a-z-]+):", block.group(1), re.MULTILINE))


def zsh_options(command: str) -> set[str]:
    """The options of `command`'s branch; `$help` and `$config` stand for theirs."""
    branch = re.search(rf"^ +{re.escape(command)}\)\n(.*?);;", zsh_text(), re.DOTALL | re.MULTILINE)
    assert branch is not None, f"no zsh branch for {command}"
    body = branch.group(1)
    # An option spec starts a quoted word, or follows its exclusion list or a brace.
    options = set(re.findall(r"(?<=['){,])(--?[a-z][a-z-]*)(?=[\[=+,}'])", body))
    options |= {"-h", "--help"} if "$help" in body else set()
    options |= {"--config"} if "$config" in body else set()
    return options


def test_zsh_file_is_a_completion_for_p2pcc() -> None:
    assert zsh_text().startswith("#compdef p2pcc\n")
    assert zsh_text().rstrip().endswith('_p2pcc "$@"')


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_file_parses() -> None:
    subprocess.run(["zsh", "-n", str(ZSH_FILE)], check=True, timeout=10)


def test_zsh_offers_every_command_of_the_cli_and_no_other() -> None:
    commands = set(parser_options())
    assert commands <= zsh_commands(), f"no zsh completion for {commands - zsh_commands()}"
    assert zsh_commands() <= commands, f"not a command: {zsh_commands() - commands}"


def test_zsh_offers_exactly_each_commands_options() -> None:
    for command, options in parser_options().items():
        assert zsh_options(command) == options, command
