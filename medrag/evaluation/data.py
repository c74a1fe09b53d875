"""Retrieval benchmark data: R2MED task folders and BEIR folders, read into one ``RetrievalTask`` shape.

R2MED task folder (``R2MED/<Task>`` on the Hugging Face hub)::

    corpus.jsonl   {"id", "text"}
    query.jsonl    {"id", "text", ...}
    qrels.jsonl    {"q_id", "p_id", "score"}     (or qrels.txt: "q_id p_id score" lines, TREC qrels too)

BEIR folder (``https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/<name>.zip``)::

    corpus.jsonl   {"_id", "title", "text"}
    queries.jsonl  {"_id", "text"}
    qrels/<split>.tsv   "query-id<TAB>corpus-id<TAB>score" with a header line

Queries without any judgement are dropped (as BEIR and R2MED do); relevance grades are kept as integers so
graded qrels are scored exactly as trec_eval scores them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataNotFoundError, InputError
from ..manifest import sha256_file

__all__ = [
    "R2MED_TASKS",
    "R2MED_HUB",
    "BEIR_URL",
    "RetrievalTask",
    "Qrels",
    "read_jsonl",
    "load_r2med_task",
    "load_beir_task",
    "find_r2med_tasks",
    "load_tasks",
    "read_qrels_file",
]

log = logging.getLogger(__name__)

#: The eight R2MED tasks, named as on the Hugging Face hub (``R2MED/<Task>``) and in the published results.
R2MED_TASKS = (
    "Biology",
    "Bioinformatics",
    "Medical-Sciences",
    "MedXpertQA-Exam",
    "MedQA-Diag",
    "PMC-Treatment",
    "PMC-Clinical",
    "IIYi-Clinical",
)
R2MED_HUB = "https://huggingface.co/datasets/R2MED/{task}"
BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"

Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class RetrievalTask:
    """One retrieval task: where its corpus file is, its queries and its graded judgements.

    ``queries`` maps query id -> text, ``qrels`` query id -> {doc id: grade}. ``corpus_path`` is the jsonl
    file the index is built from; ``corpus_sha256`` fingerprints it (cache key of the index).
    """

    name: str
    benchmark: str
    root: Path
    corpus_path: Path
    corpus_sha256: str
    queries: dict[str, str]
    qrels: Qrels

    @property
    def num_queries(self) -> int:
        return len(self.queries)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "benchmark": self.benchmark,
            "root": str(self.root),
            "corpus": str(self.corpus_path),
            "corpus_sha256": self.corpus_sha256,
            "queries": len(self.queries),
            "judgements": sum(len(v) for v in self.qrels.values()),
        }


def read_json(path: str | Path) -> Any:
    """A whole JSON file; InputError (one line, with the position) when it is not UTF-8 JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); expected a JSON file") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply") from None


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Objects of a JSON-lines file (blank lines skipped); InputError names the bad line."""
    path = Path(path)
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise InputError(f"{path}:{n}: not UTF-8 text") from None
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise InputError(f"{path}:{n}: JSON nested too deeply") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{n}: expected a JSON object per line")
            yield obj


def _field(obj: dict[str, Any], names: tuple[str, ...], path: Path) -> Any:
    for name in names:
        if name in obj:
            return obj[name]
    raise InputError(f"{path}: a record lacks {' / '.join(names)} (keys: {', '.join(sorted(obj))})")


def _grade(value: Any, where: str) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: relevance grade {value!r} is not a number") from exc


def read_qrels_file(path: str | Path) -> Qrels:
    """Judgements from ``qrels.jsonl`` (``q_id``/``p_id``/``score`` or BEIR's ``query-id``/``corpus-id``),
    a 3-column ``qid docid grade`` file (tab or space; a header line is skipped) or TREC qrels
    (``qid 0 docid grade``)."""
    path = Path(path)
    qrels: Qrels = {}
    if path.suffix == ".jsonl":
        for obj in read_jsonl(path):
            qid = str(_field(obj, ("q_id", "query-id", "qid", "query_id"), path))
            did = str(_field(obj, ("p_id", "corpus-id", "docid", "doc_id"), path))
            qrels.setdefault(qid, {})[did] = _grade(_field(obj, ("score", "relevance", "rel"), path), str(path))
        return qrels
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) == 3:
                qid, did, grade = parts
            elif len(parts) == 4:
                qid, _, did, grade = parts
            else:
                raise InputError(f"{path}:{n}: expected 'qid docid grade' or 'qid 0 docid grade'")
            if n == 1 and not _is_number(grade):
                continue  # header ("query-id corpus-id score")
            qrels.setdefault(qid, {})[did] = _grade(grade, f"{path}:{n}")
    return qrels


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for obj in read_jsonl(path):
        qid = str(_field(obj, ("id", "_id", "query_id", "qid"), path))
        queries[qid] = str(_field(obj, ("text", "query"), path))
    return queries


def _missing(kind: str, root: Path | None, what: str) -> DataNotFoundError:
    if kind == "r2med":
        where = "download a task from the Hugging Face hub (R2MED/<Task>, e.g. " + R2MED_HUB.format(
            task="Biology"
        ) + ") or pass --from-hub"
    else:
        where = "download a BEIR data set from " + BEIR_URL.format(name="scifact") + " and unzip it"
    return DataNotFoundError(f"{root}: {what}; {where}" if root is not None else f"{what}; {where}")


def load_r2med_task(root: str | Path, name: str | None = None) -> RetrievalTask:
    """An R2MED task folder (``corpus.jsonl``, ``query.jsonl``, ``qrels.jsonl`` or ``qrels.txt``)."""
    root = Path(root)
    if not root.is_dir():
        raise _missing("r2med", root, "no such R2MED task folder")
    corpus = root / "corpus.jsonl"
    query = next((root / n for n in ("query.jsonl", "queries.jsonl") if (root / n).is_file()), None)
    qrels_path = next((root / n for n in ("qrels.jsonl", "qrels.txt", "qrels.tsv") if (root / n).is_file()), None)
    if not corpus.is_file() or query is None or qrels_path is None:
        raise _missing("r2med", root, "not an R2MED task folder (needs corpus.jsonl, query.jsonl, qrels.jsonl)")
    return _task(name or root.name, "r2med", root, corpus, _read_queries(query), read_qrels_file(qrels_path))


def load_beir_task(root: str | Path, split: str = "test", name: str | None = None) -> RetrievalTask:
    """A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``)."""
    root = Path(root)
    if not root.is_dir():
        raise _missing("beir", root, "no such BEIR folder")
    corpus, queries = root / "corpus.jsonl", root / "queries.jsonl"
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not corpus.is_file() or not queries.is_file():
        raise _missing("beir", root, "not a BEIR folder (needs corpus.jsonl, queries.jsonl, qrels/<split>.tsv)")
    if not qrels_path.is_file():
        have = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        raise DataNotFoundError(f"{root}: no qrels/{split}.tsv (splits here: {', '.join(have) or 'none'})")
    return _task(name or root.name, "beir", root, corpus, _read_queries(queries), read_qrels_file(qrels_path))


def _task(name: str, benchmark: str, root: Path, corpus: Path, queries: dict[str, str], qrels: Qrels) -> RetrievalTask:
    judged = {q: queries[q] for q in queries if q in qrels}
    unknown = sorted(set(qrels) - set(queries))
    if unknown:
        log.warning("%s: %d judged queries have no text (e.g. %s); ignored", name, len(unknown), unknown[0])
    if not judged:
        raise InputError(f"{root}: no query has a relevance judgement (check the qrels file and split)")
    return RetrievalTask(
        name=name,
        benchmark=benchmark,
        root=root,
        corpus_path=corpus,
        corpus_sha256=sha256_file(corpus),
        queries=judged,
        qrels={q: qrels[q] for q in judged},
    )


def _is_r2med(path: Path) -> bool:
    return (path / "corpus.jsonl").is_file() and any(
        (path / n).is_file() for n in ("query.jsonl", "qrels.jsonl", "qrels.txt")
    )


def find_r2med_tasks(root: str | Path) -> dict[str, Path]:
    """Task name -> folder: ``root`` itself when it is a task folder, else its task subfolders."""
    root = Path(root)
    if _is_r2med(root):
        return {root.name: root}
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and _is_r2med(p)}


def load_tasks(benchmark: str, data: str | Path | None, tasks: tuple[str, ...] = (), *,
               split: str = "test") -> list[RetrievalTask]:
    """The tasks of ``benchmark`` found under ``data`` (all of them, or those named in ``tasks``)."""
    if benchmark not in ("r2med", "beir"):
        raise InputError(f"unknown retrieval benchmark {benchmark!r}; known: r2med, beir")
    if data is None:
        raise _missing(benchmark, None, f"no {benchmark} data given (--data)")
    if Path(data).is_dir() and not any(Path(data).iterdir()):
        raise _missing(benchmark, Path(data), "the data folder is empty")
    if benchmark == "beir":
        return [load_beir_task(data, split=split)]
    found = find_r2med_tasks(data)
    if not found:
        raise _missing("r2med", Path(data), "no R2MED task folder here")
    if tasks:
        lower = {k.lower(): k for k in found}
        missing = [t for t in tasks if t.lower() not in lower]
        if missing:
            raise DataNotFoundError(
                f"{data}: no task folder {', '.join(missing)} (found: {', '.join(found)}); "
                f"download it from {R2MED_HUB.format(task=missing[0])}"
            )
        found = {lower[t.lower()]: found[lower[t.lower()]] for t in tasks}
    return [load_r2med_task(path, name) for name, path in found.items()]
