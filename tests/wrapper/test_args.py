"""Which compiler command lines go to peers: real lines from make, cmake, autotools,
meson, libtool and the kernel, and the ones that must stay local, with why."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.wrapper.args import classify, is_source

DISTRIBUTABLE = [
    # make's built-in rule
    "-O2 -g -c -o hello.o hello.c",
    "-c hello.c",
    # cmake (Makefile and Ninja generators)
    "-DFOO=1 -I/src/include -O3 -DNDEBUG -std=gnu++17 -MD -MT CMakeFiles/x.dir/a.cpp.o "
    "-MF CMakeFiles/x.dir/a.cpp.o.d -o CMakeFiles/x.dir/a.cpp.o -c /src/a.cpp",
    "-isystem /opt/dep/include -fPIC -fvisibility=hidden -o obj/b.cc.o -c ../src/b.cc",
    # cmake try_compile: a real compile, fine to send
    "-o CMakeFiles/cmTC_1a2b3.dir/testCCompiler.c.o -c /tmp/CMakeScratch/testCCompiler.c",
    # automake with dependency tracking, and libtool's PIC object
    "-DHAVE_CONFIG_H -I. -I.. -g -O2 -MT foo.o -MD -MP -MF .deps/foo.Tpo -c -o foo.o foo.c",
    "-DHAVE_CONFIG_H -I. -g -O2 -MT foo.lo -MD -MP -MF .deps/foo.Tpo -c foo.c -fPIC -DPIC "
    "-o .libs/foo.o",
    # meson
    "-Ilibfoo.a.p -I. -I.. -fdiagnostics-color=always -D_FILE_OFFSET_BITS=64 -Wall "
    "-Winvalid-pch -O3 -fPIC -MD -MQ libfoo.a.p/foo.c.o -MF libfoo.a.p/foo.c.o.d "
    "-o libfoo.a.p/foo.c.o -c ../foo.c",
    # the kernel's C rule (dependencies through -Wp, quoted defines, -include)
    "-Wp,-MMD,fs/.open.o.d -nostdinc -I./arch/x86/include -I./include "
    "-include ./include/linux/compiler-version.h -include ./include/linux/kconfig.h "
    "-D__KERNEL__ -fmacro-prefix-map=./= -std=gnu11 -fno-PIE -mcmodel=kernel "
    "-DKBUILD_MODFILE='\"fs/open\"' -DKBUILD_BASENAME='\"open\"' -c -o fs/open.o fs/open.c",
    # separate-word arguments that look like inputs
    "-include config.h -MF deps.d -MT out.o --param max-inline-insns=9 -c x.c",
    "-S -o x.s x.c",
    "-c x.ii -o x.o",
    "-c x.C",
    "-c -flto=auto -ffat-lto-objects x.c",
    "-march=native -O2 -c x.c",  # native flags are the wrapper's next step, not a refusal
    "-g -gdwarf-5 -fdebug-prefix-map=/src=. -c x.c",
    "-fsanitize=address,undefined -c x.c",
    "-pg -c x.c",
]

LOCAL = [
    ("hello.o -o hello", "not a compile"),  # linking
    ("-O2 hello.c -o hello", "not a compile"),  # compile and link
    ("-shared -o libx.so a.o b.o", "not a compile"),
    ("--version", "not a compile"),
    ("-c --version", "a query"),
    ("-v -c x.c", "a query"),
    ("-### -c x.c", "a query"),
    ("-c -print-file-name=libc.so", "a query"),
    ("-dumpmachine -c x.c", "a query"),
    ("-E x.c", "not a compile"),
    ("-E -c x.c", "-E only preprocesses"),
    ("-M -c x.c", "lists dependencies"),
    ("-MM -c x.c", "lists dependencies"),
    ("-c conftest.c", "autoconf probe"),
    ("-c -g -O2 conftest.c -o conftest.o", "autoconf probe"),
    ("-c x.c -o conftest.o", "autoconf probe"),
    ("-c a.c b.c", "several sources"),
    ("-c a.c -o a.o -o b.o", "several -o"),
    ("-c a.c -o -", "stdout"),
    ("-c -", "stdin"),
    ("-c @args.rsp", "response file"),
    ("-c x.S -o x.o", "not a C/C++ source"),  # assembly (.include is the assembler's)
    ("-c x.s", "not a C/C++ source"),
    ("-c x.m", "not a C/C++ source"),  # Objective-C: peers may lack cc1obj
    ("-c x.h -o x.h.gch", "not a C/C++ source"),  # precompiled header
    ("-c a.c b.o", "not a C/C++ source"),
    ("-c -x c /dev/null -o /tmp/x", "-x"),  # the kernel's cc-option probe
    ("-xc -c x.c", "-x"),
    ("-c x.c -fprofile-generate", "profile"),
    ("-c x.c -fprofile-use=x.profdata", "profile"),
    ("-c x.c -fprofile-arcs -ftest-coverage", "profile"),
    ("-c x.c --coverage", "coverage"),
    ("-c x.c -fauto-profile=p.afdo", "profile"),
    ("-c x.c -fplugin=./scripts/gcc-plugins/latent_entropy_plugin.so", "-fplugin"),
    ("-c x.c -specs=/usr/share/dpkg/no-pie-compile.specs", "-specs"),
    ("-c x.c --specs nosys.specs", "-specs"),
    ("-c x.c -B/opt/binutils/bin", "-B"),
    ("-c x.c -B /opt/binutils/bin", "-B"),
    ("-c x.c -save-temps", "-save-temps"),
    ("-c x.c -save-temps=obj", "-save-temps"),
    ("-c x.c -fdump-tree-all", "-fdump"),
    ("-c x.c -dA", "dumps"),
    ("-c x.c -gsplit-dwarf", ".dwo"),
    ("-c x.c -fstack-usage", ".su"),
    ("-c x.c -Wa,-adhln=x.lst", "assembler listing"),
    ("-c x.c -Wa,--MD,x.d", "assembler listing"),
    ("-c x.c -Xassembler -adhln=x.lst", "job guard"),
    # distcc passes these on, and a peer's job guard refuses them (docs/distccd.md)
    ("-c x.c --sysroot=/opt/sysroot", "job guard"),
    ("-c x.c --sysroot /opt/sysroot", "job guard"),
    ("-c x.c -Xlinker -z -Xlinker relro", "job guard"),
    ("-c x.c -Xpreprocessor -DX", "job guard"),
    ("-c x.c -fopt-info-vec=vec.txt", "-fopt-info"),
    ("-c x.c -fsanitize-ignorelist=ignore.txt", "sanitizer list"),
    ("-c x.cc -fmodules-ts", "modules"),
    ("-c x.cc -fmodule-file=m.pcm", "modules"),
    ("-c x.c -include-pch x.pch", "precompiled headers"),
    ("-c x.c -Xclang -load -Xclang p.so", "-Xclang"),
    ("-c x.c -ftime-trace", "besides the object"),
    ("-c x.c -fsyntax-only", "no object"),
    ("-c x.c -I", "without its argument"),
    ("-c", "no C/C++ source"),
    ("-c x.c -frepo", "-frepo"),
]


@pytest.mark.parametrize("line", DISTRIBUTABLE)
def test_distributable_command_lines(line: str) -> None:
    assert classify(shlex.split(line)) == (True, "compile")


@pytest.mark.parametrize(("line", "why"), LOCAL)
def test_local_command_lines_say_why(line: str, why: str) -> None:
    distributable, reason = classify(shlex.split(line))
    assert not distributable
    assert why in reason


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("a.c", True),
        ("dir.d/a.cpp", True),
        ("a.c++", True),
        ("A.C", True),
        ("a.CPP", True),
        ("x.i", True),
        ("a.h", False),
        ("a.c.o", False),
        ("Makefile", False),
        ("dir.c/file", False),
        ("a.CC", False),  # gcc treats .CC as a linker input
    ],
)
def test_sources_are_recognised_by_extension(path: str, source: bool) -> None:
    assert is_source(path) is source


@given(st.lists(st.text(max_size=12), max_size=12))
def test_any_argument_list_is_classified_without_error(args: list[str]) -> None:
    distributable, reason = classify(args)
    assert reason
    if distributable:
        assert "-c" in args or "-S" in args
        assert sum(is_source(arg) for arg in args) >= 1
