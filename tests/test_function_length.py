"""Every function in the package reads on one screen: at most 80 lines (docstring included, decorators not)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "disco_inspect"
LIMIT = 80


def _long_functions() -> list[str]:
    rows = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > LIMIT:
                    rows.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({n} lines)")
    return rows


def test_no_function_is_longer_than_80_lines():
    long = _long_functions()
    assert not long, "split these into numbered steps that return values:\n" + "\n".join(long)
