"""The core stays sans-I/O: importing it pulls in no clock, socket, process or trio."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import p2pcc.core

CORE_DIR = Path(p2pcc.core.__file__).parent
FORBIDDEN = ("time", "socket", "subprocess", "selectors", "trio", "zeroconf", "platformdirs")


def core_module_names() -> list[str]:
    return [f"p2pcc.core.{info.name}" for info in pkgutil.iter_modules([str(CORE_DIR)])]


def test_core_has_modules() -> None:
    # Guards the tests below against passing vacuously on an empty package.
    assert {"model", "limits", "errors", "wire", "peers", "ranking", "hosts", "fingerprint"} <= {
        name.rsplit(".", 1)[1] for name in core_module_names()
    }


def test_importing_the_core_loads_no_io_module() -> None:
    # `time` is built into the interpreter and already in sys.modules at start-up, so it
    # is removed first: any `import time` below would put it back.  msgpack is imported
    # before that because its C extension loads `datetime` (and so `time`) for its
    # Timestamp type; what counts is what the core's own code imports.
    probe = (
        "import sys, msgpack\n"
        "for name in [n for n in sys.modules if n.split('.')[0] in FORBIDDEN]:\n"
        "    del sys.modules[name]\n"
        "for name in MODULES:\n"
        "    __import__(name)\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & set(FORBIDDEN)))\n"
    )
    code = f"FORBIDDEN = {FORBIDDEN!r}\nMODULES = {core_module_names()!r}\n{probe}"
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_core_source_imports_nothing_forbidden() -> None:
    # The runtime check above only sees what is imported at module load; this one also
    # catches an import hidden inside a function.
    offenders = []
    for path in CORE_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
