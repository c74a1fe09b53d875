"""Print pip requirement specs for medrag's extras ``argv[1]`` (comma-separated) minus llama-cpp-python;
with ``--llm-only``, just the llama-cpp-python specs (with their own extras, e.g. ``[server]``).

``scripts/setup.sh`` installs the first list while llama-cpp-python compiles in the background, the second
once its wheel is built. Reads the extras from
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
    llm_only = "--llm-only" in sys.argv[2:]
    picked = [r for r in dict.fromkeys(reqs) if r.startswith("llama-cpp-python") == llm_only]
    sys.stdout.write(" ".join(picked) + "\n")


if __name__ == "__main__":
    main()
