"""Running QA and MedRGB evaluations through an LLM: prompts in batches, a per-item cache, results files.

Layout of an output folder::

    <out>/predictions-<fingerprint>.jsonl   one line per finished item (the resumable cache)
    <out>/results.json                      summary metrics + full config + versions (+ model name/profile)

The fingerprint covers everything that changes a generation (model, profile, prompt settings), so reruns of
the same config skip finished items and a changed config starts a fresh cache beside the old one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..config import MedRGBEvalConfig, QAEvalConfig, config_to_dict
from ..errors import EvaluationError
from ..manifest import atomic_write_json
from .medrgb import MedRGBInstance, MedRGBQuestion, build_instances
from .medrgb_scoring import aggregate, build_prompt, score_response
from .qa import QAItem, accuracy_summary, chat_prompt, completion_prompt, parse_answer
from .records import ItemCache, config_fingerprint, provenance

__all__ = ["run_qa", "run_medrgb", "BATCH"]

log = logging.getLogger(__name__)
BATCH = 8


def _llm_facts(llm: Any) -> dict[str, Any]:
    profile = getattr(llm, "profile", None)
    return {"name": getattr(llm, "name", type(llm).__name__),
            "profile": asdict(profile) if profile is not None else None}


def _is_completion(llm: Any) -> bool:
    profile = getattr(llm, "profile", None)
    return getattr(profile, "prompt_style", "completion") == "completion"


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _progress(total: int, desc: str, enabled: bool) -> Any:
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", file=sys.stderr, disable=not enabled)


def _generate(llm: Any, prompts: list[Any], max_tokens: int, stop: tuple[str, ...]) -> list[str]:
    from ..llm import GenerationParams

    gens = llm.generate(prompts, GenerationParams(max_tokens=max_tokens, temperature=0.0, stop=stop))
    return [g.text for g in gens]


# ---------------------------------------------------------------------------------------------- QA


def _context(item: QAItem, config: QAEvalConfig, retriever: Any) -> str:
    if config.context == "none":
        return ""
    if config.context == "retrieved":
        hits = retriever.search(item.question, k=config.k)
        return "\n".join(f"[{i}] {h.text}" for i, h in enumerate(hits, 1))[: config.context_chars]
    return item.context[: config.context_chars]


def _qa_prompt(item: QAItem, config: QAEvalConfig, llm: Any, retriever: Any) -> Any:
    ctx = _context(item, config, retriever)
    if _is_completion(llm):
        return completion_prompt(item, ctx, shots=config.few_shot)
    return chat_prompt(item, ctx)


def _answer_batch(batch: Sequence[QAItem], config: QAEvalConfig, llm: Any, retriever: Any,
                  loop: Any) -> list[dict[str, Any]]:
    if loop is not None:
        out = []
        for item in batch:
            answer = loop.run(item.question, dict(item.options))
            out.append({"text": answer.answer, "prediction": answer.option})
        return out
    prompts = [_qa_prompt(item, config, llm, retriever) for item in batch]
    stop = ("\n",) if _is_completion(llm) else ()
    texts = _generate(llm, prompts, config.max_tokens, stop)
    return [{"text": t, "prediction": parse_answer(t, item.options)} for t, item in zip(texts, batch, strict=True)]


def _loop(retriever: Any, llm: Any, loop_config: Any) -> Any:
    from ..reason import FollowUpLoop

    return FollowUpLoop(retriever, llm, loop_config)


def run_qa(items: Sequence[QAItem], config: QAEvalConfig, out: str | Path, llm: Any, *, retriever: Any = None,
           loop_config: Any = None, progress: bool = True) -> dict[str, Any]:
    """Answer every item (resuming from the cache), score, and write ``results.json``; returns its content.

    ``retriever`` serves ``context="retrieved"`` and ``loop=True`` (``medrag.reason.FollowUpLoop`` with
    ``loop_config``, default ``LoopConfig()``)."""
    out = Path(out)
    items = list(items)[: config.limit] if config.limit else list(items)
    if not items:
        raise EvaluationError("no QA items to evaluate")
    if (config.loop or config.context == "retrieved") and retriever is None:
        raise EvaluationError("retrieved context and the reasoning loop need a retriever (an index)")
    loop = _loop(retriever, llm, loop_config) if config.loop else None
    gen_config = {**config_to_dict(replace(config, limit=None, bootstrap=0, seed=0)), "model": _llm_facts(llm)}
    if loop is not None:
        gen_config["loop"] = config_to_dict(loop.config)
    cache = ItemCache(out / f"predictions-{config_fingerprint(gen_config)}.jsonl")
    todo = [it for it in items if it.item_id not in cache]
    t0 = time.perf_counter()
    bar = _progress(len(items), f"{config.benchmark}", progress)
    bar.update(len(items) - len(todo))
    for batch in _batches(todo, BATCH):
        for item, result in zip(batch, _answer_batch(batch, config, llm, retriever, loop), strict=True):
            cache.put(item.item_id, {**result, "gold": item.answer, "dataset": item.dataset})
        bar.update(len(batch))
    bar.close()
    results = _qa_results(items, cache, config, gen_config, time.perf_counter() - t0, len(todo))
    atomic_write_json(out / "results.json", results)
    return results


def _qa_results(items: Sequence[QAItem], cache: ItemCache, config: QAEvalConfig, gen_config: dict[str, Any],
                seconds: float, generated: int) -> dict[str, Any]:
    names = {k: v for k, v in items[0].options}
    preds = [cache.get(it.item_id)["prediction"] for it in items]
    golds = [it.answer for it in items]
    word = all(dict(it.options) == names for it in items)
    summary = accuracy_summary(golds, preds, bootstrap=config.bootstrap, seed=config.seed,
                               labels=names if word else None)
    by_dataset = {}
    for name in sorted({it.dataset for it in items}):
        idx = [i for i, it in enumerate(items) if it.dataset == name]
        by_dataset[name or "all"] = accuracy_summary([golds[i] for i in idx], [preds[i] for i in idx],
                                                     bootstrap=config.bootstrap, seed=config.seed)
    return {
        "kind": "qa",
        "benchmark": config.benchmark,
        "summary": summary,
        "datasets": by_dataset,
        "timing": {"seconds": round(seconds, 2), "generated_items": generated,
                   "seconds_per_generated_item": round(seconds / generated, 3) if generated else None},
        **provenance(config_to_dict(config), model=gen_config["model"], loop_config=gen_config.get("loop"),
                     cache=cache.path.name),
    }


# ------------------------------------------------------------------------------------------- MedRGB


def _medrgb_prompt(inst: MedRGBInstance, config: MedRGBEvalConfig, llm: Any) -> Any:
    text = build_prompt(inst, doc_chars=config.doc_chars)
    return text if _is_completion(llm) else [{"role": "user", "content": text}]


def run_medrgb(questions: Sequence[MedRGBQuestion], config: MedRGBEvalConfig, out: str | Path, llm: Any, *,
               progress: bool = True) -> dict[str, Any]:
    """Build the scenario's instances, answer them (resuming), score, and write ``results.json``."""
    out = Path(out)
    pool = [d for q in questions for d in q.signal]  # noise comes from every question, also under --limit
    questions = list(questions)[: config.limit] if config.limit else list(questions)
    instances = build_instances(questions, config.scenario, config.p_sig, n_docs=config.n_docs,
                                n_signal_standard=config.n_signal_standard, seed=config.seed, noise_pool=pool)
    if not instances:
        raise EvaluationError("no MedRGB instances to evaluate (no questions, or integration with p_sig 0 only)")
    gen_config = {k: v for k, v in config_to_dict(config).items() if k not in ("limit", "p_sig")}
    gen_config["model"] = _llm_facts(llm)
    cache = ItemCache(out / f"predictions-{config_fingerprint(gen_config)}.jsonl")
    todo = [inst for inst in instances if inst.key not in cache]
    t0 = time.perf_counter()
    bar = _progress(len(instances), f"medrgb {config.scenario}", progress)
    bar.update(len(instances) - len(todo))
    for batch in _batches(todo, BATCH):
        texts = _generate(llm, [_medrgb_prompt(i, config, llm) for i in batch], config.max_tokens, ())
        for inst, text in zip(batch, texts, strict=True):
            cache.put(inst.key, {"text": text})
        bar.update(len(batch))
    bar.close()
    scored = [score_response(inst, cache.get(inst.key)["text"]) for inst in instances]
    results = {
        "kind": "medrgb",
        "benchmark": "medrgb",
        "scenario": config.scenario,
        "metrics": aggregate(scored),
        "items": scored,
        "timing": {"seconds": round(time.perf_counter() - t0, 2), "generated_items": len(todo)},
        **provenance(config_to_dict(config), model=gen_config["model"], cache=cache.path.name),
    }
    atomic_write_json(out / "results.json", results)
    return results
