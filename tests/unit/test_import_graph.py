"""medrag's import graph follows the layer order written in docs/index.md: no module imports from a higher
layer (function-level imports included) and no modules import each other in a cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "medrag"
DOC = ROOT / "docs" / "index.md"


def _layers() -> dict[str, int]:
    """``name -> layer`` from the numbered list under "## Layers" in docs/index.md."""
    text = DOC.read_text(encoding="utf-8").split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers: dict[str, int] = {}
    for line in text.splitlines():
        match = re.match(r"\s*(\d+)\. [^:]*:?\s*(.*)", line)
        if match:
            for name in re.findall(r"`([\w.]+)`", line):
                layers[name] = int(match.group(1))
    return layers


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """medrag modules ``name`` imports anywhere in its body (a name imported from a package counts as the
    submodule when one of that name exists)."""
    base_parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "medrag")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base_parts[: len(base_parts) - node.level + 1]
                target = ".".join(parts + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "medrag":
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str, layers: dict[str, int]) -> int:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[1:i]) if i > 1 else "medrag"
        if key in layers:
            return layers[key]
    raise AssertionError(f"{module} belongs to no layer in docs/index.md; add its package there")


def test_every_module_has_a_layer():
    layers = _layers()
    assert len(set(layers.values())) >= 8, layers
    for module in MODULES:
        _layer(module, layers)


def test_no_arrow_points_up():
    layers = _layers()
    upward = sorted(f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets
                    if _layer(b, layers) > _layer(a, layers))
    assert upward == []


def test_no_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(GRAPH[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert cycles == []
