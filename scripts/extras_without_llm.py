"""Print pip requirement specs for medrag's extras ``argv[1]`` (comma-separated) minus llama-cpp-python.

``scripts/setup.sh`` installs these while llama-cpp-python compiles in the background. Reads the extras from
pyproject.toml (``medrag[...]`` self-references are expanded), so the list never drifts from the package.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: print nothing; setup.sh installs the full extras once the wheel is built
    tomllib = None  # type: ignore[assignment]


def expand(extras: dict[str, list[str]], names: list[str], seen: set[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        for req in extras.get(name, []):
            inner = re.fullmatch(r"medrag\[([^\]]+)\]", req)
            out += expand(extras, inner.group(1).split(","), seen) if inner else [req]
    return out


def main() -> None:
    if tomllib is None:
        return
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    reqs = expand(extras, [n.strip() for n in sys.argv[1].split(",") if n.strip()], set())
    sys.stdout.write(" ".join(r for r in dict.fromkeys(reqs) if not r.startswith("llama-cpp-python")) + "\n")


if __name__ == "__main__":
    main()
