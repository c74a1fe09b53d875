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
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..config import MedRGBEvalConfig, QAEvalConfig, config_to_dict
from ..errors import EvaluationError
from ..manifest import atomic_write_json
from ..reason import FollowUpLoop
from ..reason.parsing import ParseError, parse_final
from .generation import generate_stage, stage_budget, visible
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


# ---------------------------------------------------------------------------------------------- QA

#: MedRAG's snippet count for a model trusted with clinical answers; a small untrusted model gets few
TRUSTED_K, UNTRUSTED_K = 32, 5
#: the context cut for an untrusted (tiny, CPU) model; a trusted model's context is never cut as a whole
UNTRUSTED_CONTEXT_CHARS = 1500


def _trusted(llm: Any) -> bool:
    return bool(getattr(getattr(llm, "profile", None), "clinical_answers", False))


def qa_context_size(config: QAEvalConfig, llm: Any) -> tuple[int, int | None]:
    """(snippets retrieved, total context characters or None = no cut) for ``llm``: the config's values, or
    by the profile's trust — MedRAG's 32 snippets uncut for a trusted model, 5 cut to 1,500 characters else."""
    trusted = _trusted(llm)
    k = config.k or (TRUSTED_K if trusted else UNTRUSTED_K)
    chars = config.context_chars if config.context_chars is not None else (None if trusted else UNTRUSTED_CONTEXT_CHARS)
    return k, chars


def _context(item: QAItem, config: QAEvalConfig, llm: Any, retriever: Any) -> str:
    if config.context == "none":
        return ""
    k, chars = qa_context_size(config, llm)
    if config.context == "retrieved":
        hits = retriever.search(item.question, k=k)
        text = "\n".join(f"[{i}] {h.title + '. ' if h.title else ''}{h.text}" for i, h in enumerate(hits, 1))
    else:
        text = item.context
    return text if chars is None else text[:chars]


def _qa_prompt(item: QAItem, config: QAEvalConfig, llm: Any, retriever: Any) -> Any:
    ctx = _context(item, config, llm, retriever)
    if _is_completion(llm):
        return completion_prompt(item, ctx, shots=config.few_shot)
    return chat_prompt(item, ctx)


def _parse(text: str, item: QAItem, llm: Any) -> str | None:
    return parse_answer(visible(text, llm), item.options)


def qa_budget(config: QAEvalConfig, llm: Any) -> Any:
    """The QA stage budget: the profile's ``qa`` budget with the config's overrides."""
    return stage_budget(llm, "qa", answer=config.max_tokens, thinking=config.thinking_tokens)


def _direct(batch: Sequence[QAItem], config: QAEvalConfig, llm: Any, retriever: Any) -> list[dict[str, Any]]:
    """One budgeted generation per item; the prediction is the option its visible answer names."""
    prompts = [_qa_prompt(item, config, llm, retriever) for item in batch]
    stop = ("\n",) if _is_completion(llm) else ()
    gens = generate_stage(llm, prompts, qa_budget(config, llm), stop=stop, seed=config.seed)
    return [{"text": g.text, "prediction": _parse(g.text, item, llm), "forced": g.forced, "asked": "direct"}
            for g, item in zip(gens, batch, strict=True)]


def loop_choice(answer: Any, item: QAItem, llm: Any) -> tuple[str | None, str] | None:
    """(the option the model itself chose, its final output) from a loop run's trace, or None when the loop
    never asked the model for a final answer. Thinking is removed first; the evidence view's word-match
    option (``answer.option`` of an evidence answer) is never used."""
    finals = [step for step in answer.trace if step.kind == "final" and step.outputs]
    if not finals:
        return None
    text = finals[-1].outputs[-1]
    shown = visible(text, llm)
    options = dict(item.options)
    try:
        draft = parse_final(shown if not _is_completion(llm) else "Answer:" + shown, options)
    except ParseError:
        return parse_answer(shown, item.options, think_open=None, think_close=None), text
    if draft.option is not None:
        return draft.option, text
    return parse_answer(draft.answer, item.options, think_open=None, think_close=None), text


def _through_loop(batch: Sequence[QAItem], config: QAEvalConfig, llm: Any, retriever: Any,
                  loop: Any) -> list[dict[str, Any]]:
    """The loop's final answer, scored by the model's own choice; when the loop did not ask the model
    (nothing passed its relevance floor) the model is asked directly over the retrieved context."""
    out: list[dict[str, Any]] = []
    for item in batch:
        choice = loop_choice(loop.run(item.question, dict(item.options)), item, llm)
        if choice is None:
            out.extend(_direct([item], replace(config, context="retrieved"), llm, retriever))
        else:
            out.append({"text": choice[1], "prediction": choice[0], "forced": False, "asked": "loop"})
    return out


def _answer_batch(batch: Sequence[QAItem], config: QAEvalConfig, llm: Any, retriever: Any,
                  loop: Any) -> list[dict[str, Any]]:
    if loop is not None:
        return _through_loop(batch, config, llm, retriever, loop)
    return _direct(batch, config, llm, retriever)


def _loop(retriever: Any, llm: Any, loop_config: Any) -> Any:
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
    k, chars = qa_context_size(config, llm)
    gen_config = {**config_to_dict(replace(config, limit=None, bootstrap=0, seed=0)), "model": _llm_facts(llm),
                  "resolved": {"k": k, "context_chars": chars,
                               "thinking_tokens": qa_budget(config, llm).thinking,
                               "answer_tokens": qa_budget(config, llm).answer}}
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
    rows = [cache.get(it.item_id) for it in items]
    return {
        "kind": "qa",
        "benchmark": config.benchmark,
        "summary": summary,
        "datasets": by_dataset,
        "generation": {"forced_answers": sum(bool(r.get("forced")) for r in rows),
                       "asked": dict(Counter(str(r.get("asked", "direct")) for r in rows)),
                       **gen_config["resolved"]},
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
    budget = stage_budget(llm, "medrgb", answer=config.max_tokens, thinking=config.thinking_tokens)
    gen_config = {k: v for k, v in config_to_dict(config).items() if k not in ("limit", "p_sig")}
    gen_config["model"] = _llm_facts(llm)
    cache = ItemCache(out / f"predictions-{config_fingerprint(gen_config)}.jsonl")
    todo = [inst for inst in instances if inst.key not in cache]
    t0 = time.perf_counter()
    bar = _progress(len(instances), f"medrgb {config.scenario}", progress)
    bar.update(len(instances) - len(todo))
    for batch in _batches(todo, BATCH):
        gens = generate_stage(llm, [_medrgb_prompt(i, config, llm) for i in batch], budget, cue="JSON answer:",
                              seed=config.seed)
        for inst, g in zip(batch, gens, strict=True):
            cache.put(inst.key, {"text": g.text, "forced": g.forced})
        bar.update(len(batch))
    bar.close()
    scored = [score_response(inst, visible(cache.get(inst.key)["text"], llm)) for inst in instances]
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
