"""Imports point down the package's layers (docs/method.md, "Architecture: layers"), and no module imports itself
back through others.

Every ``import``/``from ... import`` in the package (module level and inside functions) is parsed. Layers, bottom
to top: base (errors, io, config, registry) < models < engine < editing < analysis < report < orchestration
(auditor, editor) < world (a user of everything below, never imported by it) < face (cli, the package's
``__init__``, testing). A module may import its own layer or lower ones; private names (``_x``) never cross a
package boundary.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "disco_inspect"
RANKS = {
    "base": 0,
    "models": 1,
    "engine": 2,
    "editing": 3,
    "analysis": 4,
    "report": 5,
    "orchestration": 6,
    "world": 7,
    "face": 8,
}
BASE = {"errors", "io", "config", "registry", "_lazy"}
ORCHESTRATION = {"auditor", "editor", "runner", "defaults", "planner", "planner_images"}
FACE = {"", "cli", "testing", "__main__"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out[".".join(["disco_inspect", *parts])] = path
    return out


MODULES = _modules()


def layer(module: str) -> str:
    parts = module.split(".")[1:]
    head = parts[0] if parts else ""
    if head in FACE:
        return "face"
    if head in BASE:
        return "base"
    if head in ORCHESTRATION:
        return "orchestration"
    return head


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def imports(module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import of ``module`` that stays in the package."""
    path = MODULES[module]
    is_pkg = path.name == "__init__.py"
    here = module.split(".") if is_pkg else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("disco_inspect"):
                    found.append((alias.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("disco_inspect"):
                continue
            names = [a.name for a in node.names]
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if subs and len(subs) == len(names):
                found.extend((s, [], node.lineno) for s in subs)
            else:
                found.append((target, names, node.lineno))
    return found


def test_imports_point_down():
    bad = []
    for module in MODULES:
        for target, _, line in imports(module):
            if target not in MODULES:
                continue
            src, dst = layer(module), layer(target)
            if RANKS[dst] > RANKS[src]:
                bad.append(f"{module}:{line} ({src}) imports {target} ({dst})")
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = {m: {t for t, _, _ in imports(m) if t in MODULES and t != m} for m in MODULES}
    # packages import their own submodules lazily or not at all; an edge into a package's __init__ from inside
    # it would be a cycle too, so nothing is exempt
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_private_name_crosses_a_package():
    bad = []
    for module in MODULES:
        for target, names, line in imports(module):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and _package(target) != _package(module):
                bad.append(f"{module}:{line} imports {', '.join(private)} from {target}")
    assert not bad, "private names imported across packages:\n" + "\n".join(sorted(bad))
