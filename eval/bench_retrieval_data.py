"""Synthetic medical-like corpora, vectors and queries for ``eval/bench_retrieval.py``.

Deterministic (seeded): the same size always gives the same corpus. Written under ``WORK`` and reused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("MEDRAG_BENCH_WORK", ROOT / "eval" / ".cache" / "bench"))
DIM = 384

# ------------------------------------------------------------------------------------ synthetic text

_MEDICAL = (
    "patient patients therapy treatment dose doses trial randomized placebo mortality morbidity risk ratio "
    "hazard confidence interval outcome outcomes cohort incidence prevalence diagnosis diagnostic sensitivity "
    "specificity biomarker serum plasma renal hepatic cardiac pulmonary vascular arterial venous thrombosis "
    "embolism anticoagulation apixaban rivaroxaban warfarin heparin aspirin clopidogrel statin atorvastatin "
    "metformin insulin glucose hba1c diabetes hypertension stroke infarction myocardial fibrillation atrial "
    "ventricular heart failure ejection fraction beta-blocker ace-inhibitor arb sglt2 glp-1 diuretic "
    "furosemide spironolactone creatinine egfr albuminuria dialysis kidney liver cirrhosis hepatitis sepsis "
    "infection antibiotic vancomycin ceftriaxone pneumonia influenza covid-19 sars-cov-2 vaccine immunotherapy "
    "tumor cancer carcinoma metastasis chemotherapy radiotherapy survival remission relapse biopsy imaging "
    "mri ct ultrasound echocardiography ecg troponin lactate cytokine interleukin tnf-α il-6 β-cell α-blocker "
    "asthma copd inhaler corticosteroid prednisone gout allopurinol colchicine arthritis methotrexate "
    "osteoporosis bisphosphonate denosumab fracture pregnancy neonatal pediatric elderly adverse events "
    "bleeding hemorrhage transfusion hemoglobin platelet 2.5 mg 5 mg 10 mg 0.5 ml/min mmhg kg/m2 bmi 95% ci"
).split()
_SYLLABLES = "ab ac ad al am an ap ar as at az be ci co cy da de di do du fa fe fi fo ga ge gi go he hi ho " \
             "la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta " \
             "te ti to tu va ve vi vo xa xe za ze zi zo".split()
_SUFFIXES = ["itis", "osis", "emia", "ase", "ine", "ol", "ide", "mab", "nib", "pril", "sartan", "statin", "al", "ic"]
_SECTIONS = ["Abstract", "Background", "Methods", "Results", "Conclusions", "Recommendations", "Dosing"]


def vocabulary(size: int = 60_000, seed: int = 7) -> np.ndarray:
    """Real medical words first (most frequent ranks), then pronounceable synthetic terms."""
    rng = np.random.default_rng(seed)
    words = list(dict.fromkeys(_MEDICAL))
    seen = set(words)
    while len(words) < size:
        n = int(rng.integers(2, 5))
        w = "".join(rng.choice(_SYLLABLES, size=n)) + (str(rng.choice(_SUFFIXES)) if rng.random() < 0.5 else "")
        if w not in seen:
            seen.add(w)
            words.append(w)
    order = rng.permutation(len(words) - 40) + 40  # keep 40 common medical words at the top ranks
    return np.array(words[:40] + [words[i] for i in order], dtype=object)


def zipf_ranks(rng: np.random.Generator, n: int, vocab: int, a: float = 1.15) -> np.ndarray:
    ranks = rng.zipf(a, size=n * 2)
    ranks = ranks[ranks <= vocab][:n]
    while ranks.size < n:
        more = rng.zipf(a, size=n)
        ranks = np.concatenate([ranks, more[more <= vocab]])[:n]
    return ranks - 1


def synthetic_batch(rng: np.random.Generator, vocab: np.ndarray, start: int, n: int) -> Any:
    import pyarrow as pa

    from medrag.ingest.store import CHUNK_SCHEMA

    lengths = rng.integers(60, 141, size=n)
    words = vocab[zipf_ranks(rng, int(lengths.sum()), len(vocab))]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    texts = [" ".join(words[bounds[i]: bounds[i + 1]]) + "." for i in range(n)]
    titles = [" ".join(vocab[zipf_ranks(rng, 8, 3000)]).capitalize() for _ in range(n)]
    ids = [f"syn:{start + i}" for i in range(n)]
    cols: dict[str, Any] = {f.name: [None] * n for f in CHUNK_SCHEMA}
    cols.update(
        chunk_id=[f"{d}#0" for d in ids], doc_id=ids, title=titles, text=texts, position=[0] * n,
        source=rng.choice(["pubmed", "pmc", "guidelines"], size=n).tolist(),
        section=rng.choice(_SECTIONS, size=n).tolist(), year=rng.integers(1990, 2025, size=n).tolist(),
        mesh=[[] for _ in range(n)], publication_types=[[] for _ in range(n)], extra=[""] * n,
    )
    return pa.RecordBatch.from_pydict(cols, schema=CHUNK_SCHEMA)


def make_corpus(n: int) -> Path:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from medrag.ingest.store import CHUNK_SCHEMA, ShardInfo, write_corpus_manifest
    from medrag.manifest import sha256_file

    out = WORK / f"corpus-{n}"
    if (out / "manifest.json").is_file():
        return out
    (out / "shards").mkdir(parents=True, exist_ok=True)
    rng, vocab, shards = np.random.default_rng(n), vocabulary(), []
    per_shard = 100_000
    for s, start in enumerate(range(0, n, per_shard)):
        path = out / "shards" / f"part-{s:05d}.arrow"
        rows = min(per_shard, n - start)
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, CHUNK_SCHEMA) as writer:
            for b in range(start, start + rows, 10_000):
                writer.write_batch(synthetic_batch(rng, vocab, b, min(10_000, start + rows - b)))
        shards.append(ShardInfo(f"shards/{path.name}", rows, sha256_file(path)))
    write_corpus_manifest(out, source="synthetic", parameters={"generator": "bench_retrieval", "n": n},
                          shards=shards, totals={"documents": n, "skipped": {}})
    return out


def make_vectors(n: int) -> Path:
    path = WORK / f"vectors-{n}.npy"
    if path.is_file():
        return path
    rng = np.random.default_rng(n + 1)
    out = np.lib.format.open_memmap(WORK / f".vectors-{n}.tmp.npy", mode="w+", dtype=np.float32, shape=(n, DIM))
    for start in range(0, n, 100_000):
        block = rng.standard_normal((min(100_000, n - start), DIM), dtype=np.float32)
        out[start: start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    out.flush()
    del out
    os.replace(WORK / f".vectors-{n}.tmp.npy", path)
    return path


def make_queries(count: int, seed: int = 11) -> list[str]:
    rng, vocab = np.random.default_rng(seed), vocabulary()
    queries = []
    for _ in range(count):
        ranks = rng.integers(20, 5000, size=int(rng.integers(2, 6)))
        queries.append(" ".join(vocab[ranks]))
    return queries
