"""The shape of the package's code: modules, lines, function lengths, return annotations.

Prints the figures issue 10 set targets for (no module over 400 lines, no function over
60, median and 90th-percentile function length, every function's return annotated),
counted from the syntax tree of every module under `p2pcc/`.

    .venv/bin/python benchmarks/code_shape.py [PACKAGE_DIR]
"""

from __future__ import annotations

import ast
import statistics
import sys
from pathlib import Path


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "p2pcc")
    lengths: list[int] = []
    long: list[tuple[int, str]] = []
    modules: list[tuple[int, str]] = []
    annotated = 0
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        modules.append((len(text.splitlines()), str(path.relative_to(root.parent))))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                lengths.append(length)
                annotated += node.returns is not None
                if length > 60:
                    long.append((length, f"{path.relative_to(root.parent)}:{node.lineno}"))
    lengths.sort()
    print(f"modules {len(modules)}, lines {sum(lines for lines, _ in modules)}")
    print(f"modules over 400 lines: {[m for m in modules if m[0] > 400]}")
    print(f"longest modules: {sorted(modules, reverse=True)[:5]}")
    print(
        f"functions {len(lengths)}: median {statistics.median(lengths):g}, "
        f"p90 {lengths[int(len(lengths) * 0.9)]}, longest {lengths[-1]}; over 60: {long}"
    )
    print(f"return annotations {annotated}/{len(lengths)}")


if __name__ == "__main__":
    main()
