"""``medrag eval report DIR``: markdown tables and PNG bar charts of our runs next to published R2MED figures.

Reads every ``results.json`` under DIR (retrieval, QA and MedRGB results), and the published R2MED nDCG@10
table shipped in ``medrag/data/r2med_published.json``. Published numbers are shown for the *same* task only:
our runs on other tasks (a fixture, a demo subset, PubMedQA as retrieval) are listed without a published
counterpart, and the R2MED average is compared only when all eight tasks were run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import DependencyMissingError, EvaluationError
from .per_query import comparison_md, worst_md

__all__ = ["load_published", "collect", "report_markdown", "plot_retrieval", "write_report", "Collected"]

#: published systems shown in tables and plots by default (ids of ``r2med_published.json``)
HEADLINE = ("bm25", "bge", "medcpt", "e5", "grit", "nv", "hyde/qwen-7b/bm25", "hyde/gpt4/bm25",
            "hyde/gpt4/nv", "query2doc/gpt4/bm25", "query2doc/gpt4/nv", "search-o1/qwq-32b/nv")
_METRICS = ("ndcg@10", "ndcg@100", "recall@10", "recall@100", "map", "mrr")


def load_published() -> dict[str, Any]:
    """The shipped table: ``{"tasks": [...], "systems": [{"id", "name", "ndcg@10": {task: x100}, "average"}]}``."""
    text = resources.files("medrag").joinpath("data/r2med_published.json").read_text(encoding="utf-8")
    return json.loads(text)


@dataclass
class Collected:
    retrieval: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # system -> task -> metrics
    queries: dict[str, int] = field(default_factory=dict)  # task -> number of queries
    qa: list[dict[str, Any]] = field(default_factory=list)
    medrgb: list[dict[str, Any]] = field(default_factory=list)
    per_query: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # task -> system -> per query
    worst: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)  # task -> system -> worst


def collect(root: str | Path) -> Collected:
    """Every results.json under ``root`` (recursively), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise EvaluationError(f"{root}: no such results folder (run `medrag eval retrieval|rag --out {root}` first)")
    found = Collected()
    for path in sorted(root.rglob("results.json")):
        try:
            res = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        kind = res.get("kind")
        if kind == "retrieval":
            task = res["task"]["name"]
            found.retrieval.setdefault(res["system"], {})[task] = res["metrics"]
            found.queries[task] = res["num_queries"]
            _collect_per_query(found, path.parent, task, res["system"])
        elif kind == "qa":
            found.qa.append({**res, "path": str(path.parent.relative_to(root))})
        elif kind == "medrgb":
            found.medrgb.append({**res, "path": str(path.parent.relative_to(root))})
    if not (found.retrieval or found.qa or found.medrgb):
        raise EvaluationError(f"{root}: no results.json from `medrag eval` found")
    return found


def _collect_per_query(found: Collected, folder: Path, task: str, system: str) -> None:
    for name, target in (("per_query.json", found.per_query), ("worst.json", found.worst)):
        try:
            target.setdefault(task, {})[system] = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue


def _per_query_md(data: Collected) -> list[str]:
    """Wins/losses of hybrid systems vs each leg, and the worst queries of each hybrid system."""
    lines: list[str] = []
    for task in sorted(data.per_query):
        lines += comparison_md(task, data.per_query[task])
        for system in sorted(s for s in data.worst.get(task, {}) if s.startswith("hybrid")):
            lines += worst_md(task, system, data.worst[task][system])
    return (["## Per-query analysis", ""] + lines) if lines else []


def _f(x: float | None, scale: float = 100.0) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{scale * x:.2f}"


def _r2med_task(name: str, tasks: list[str]) -> str | None:
    return next((t for t in tasks if t.lower() == name.lower()), None)


def _retrieval_md(data: Collected, published: dict[str, Any]) -> list[str]:
    tasks = sorted({t for sys in data.retrieval.values() for t in sys})
    r2med = [t for t in tasks if _r2med_task(t, published["tasks"])]
    lines = ["## Retrieval (nDCG@10 x 100)", ""]
    lines += ["| system | " + " | ".join(f"{t} ({data.queries.get(t, '?')} q)" for t in tasks) + " |",
              "|---|" + "---|" * len(tasks)]
    for system, per_task in sorted(data.retrieval.items()):
        cells = [_f(per_task[t]["ndcg@10"]) if t in per_task else "–" for t in tasks]
        lines.append(f"| medrag {system} | " + " | ".join(cells) + " |")
    lines += ["", "All metrics of our runs (x 100):", "",
              "| system | task | " + " | ".join(_METRICS) + " |", "|---|---|" + "---|" * len(_METRICS)]
    for system, per_task in sorted(data.retrieval.items()):
        for t, m in sorted(per_task.items()):
            lines.append(f"| {system} | {t} | " + " | ".join(_f(m.get(k)) for k in _METRICS) + " |")
    lines += ["", "## Published R2MED nDCG@10 (x 100)", ""]
    if not r2med:
        lines += ["None of the tasks above is a full R2MED task, so no published figure is directly comparable; "
                  "the published averages over the eight R2MED tasks are the reference our systems aim at.", ""]
    cols = published["tasks"]
    lines += ["| system | " + " | ".join(cols) + " | avg |", "|---|" + "---|" * (len(cols) + 1)]
    ours_full = {s: v for s, v in data.retrieval.items() if all(_has(v, t) for t in cols)}
    for system, per_task in sorted(ours_full.items()):
        vals = [_get(per_task, t)["ndcg@10"] for t in cols]
        lines.append(f"| **medrag {system}** | " + " | ".join(_f(v) for v in vals) + f" | **{_f(sum(vals) / len(vals))}** |")
    for s in published["systems"]:
        if s["id"] in HEADLINE:
            lines.append(f"| {s['name']} | " + " | ".join(f"{s['ndcg@10'][t]:.2f}" for t in cols) + f" | {s['average']:.2f} |")
    lines += ["", f"Source: {published['source']}.", ""]
    return lines


def _has(per_task: dict[str, Any], task: str) -> bool:
    return any(t.lower() == task.lower() for t in per_task)


def _get(per_task: dict[str, Any], task: str) -> dict[str, float]:
    return next(v for t, v in per_task.items() if t.lower() == task.lower())


def _qa_md(data: Collected) -> list[str]:
    lines = ["## Question answering (accuracy %)", "",
             "| run | benchmark | model | n | accuracy | std (binomial) | std (bootstrap) | majority baseline |",
             "|---|---|---|---|---|---|---|---|"]
    for res in data.qa:
        s = res["summary"]
        lines.append(f"| {res['path']} | {res['benchmark']} | {res['model']['name']} | {s['n']} | {_f(s['accuracy'])} "
                     f"| {_f(s['std_binomial'])} | {_f(s['std_bootstrap'])} | {_f(s['majority_baseline'])} "
                     f"(\"{s['majority_label']}\") |")
    return lines + [""]


def _medrgb_md(data: Collected) -> list[str]:
    keys = ("accuracy", "insufficient_rate", "noise_detection_rate", "sub_exact_match", "sub_f1",
            "factual_error_detection_rate")
    lines = ["## MedRGB (%)", "", "| run | model | group | n | " + " | ".join(keys) + " |",
             "|---|---|---|---|" + "---|" * len(keys)]
    for res in data.medrgb:
        for group, m in res["metrics"].items():
            lines.append(f"| {res['path']} | {res['model']['name']} | {group} | {m['n']} | "
                         + " | ".join(_f(m.get(k)) for k in keys) + " |")
    return lines + [""]


def report_markdown(data: Collected, published: dict[str, Any], images: list[str]) -> str:
    lines = ["# medrag evaluation report", ""]
    lines += [f"![{Path(i).stem}]({Path(i).name})" for i in images] + ([""] if images else [])
    if data.retrieval:
        lines += _retrieval_md(data, published)
        lines += _per_query_md(data)
    if data.qa:
        lines += _qa_md(data)
    if data.medrgb:
        lines += _medrgb_md(data)
    return "\n".join(lines) + "\n"


def plot_retrieval(data: Collected, published: dict[str, Any], path: Path) -> Path:
    """Left: published R2MED averages (headline systems); right: our nDCG@10 per task we ran."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise DependencyMissingError("matplotlib", "eval", "report plots") from exc
    pub = [s for s in published["systems"] if s["id"] in HEADLINE]
    ours_full = {s: v for s, v in data.retrieval.items() if all(_has(v, t) for t in published["tasks"])}
    names = [s["name"] for s in pub] + [f"medrag {s}" for s in ours_full]
    values = [s["average"] for s in pub] + [
        100 * sum(_get(v, t)["ndcg@10"] for t in published["tasks"]) / len(published["tasks"]) for v in ours_full.values()
    ]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [1, 1.2]})
    colors = ["#9aa7b8"] * len(pub) + ["#d1495b"] * len(ours_full)
    left.barh(range(len(names)), values, color=colors)
    left.set_yticks(range(len(names)), names, fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("nDCG@10 x 100, average of the 8 R2MED tasks")
    left.set_title("Published R2MED results" + (" and ours" if ours_full else ""))
    for i, v in enumerate(values):
        left.text(v + 0.3, i, f"{v:.1f}", va="center", fontsize=7)
    tasks = sorted({t for v in data.retrieval.values() for t in v})
    systems = sorted(data.retrieval)
    width = 0.8 / max(len(systems), 1)
    for j, system in enumerate(systems):
        ran = [i for i, t in enumerate(tasks) if t in data.retrieval[system]]
        ys = [100 * data.retrieval[system][tasks[i]]["ndcg@10"] for i in ran]
        xs = [i + j * width for i in ran]
        right.bar(xs, ys, width, label=system)
        for x, y in zip(xs, ys, strict=True):
            right.text(x, y + 0.8, f"{y:.0f}", ha="center", fontsize=6)
    right.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(tasks))],
                     [f"{t}\n({data.queries.get(t, '?')} q)" for t in tasks], fontsize=8)
    right.set_ylabel("nDCG@10 x 100")
    right.set_ylim(0, 100)
    right.set_title("medrag runs (tasks we ran)")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(root: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write ``report.md`` (and ``retrieval.png`` when there are retrieval runs) into ``out`` (default ``root``)."""
    root = Path(root)
    out = Path(out) if out else root
    data = collect(root)
    published = load_published()
    images = [str(plot_retrieval(data, published, out / "retrieval.png"))] if data.retrieval else []
    md = out / "report.md"
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(report_markdown(data, published, images), encoding="utf-8")
    return {"markdown": str(md), "images": images, "retrieval_systems": sorted(data.retrieval),
            "qa_runs": len(data.qa), "medrgb_runs": len(data.medrgb)}
