"""``medrag index adapt``: fine-tune the dense encoder on a corpus without labels (see ``adapt.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..cli_common import emit_json, json_option
from ..config import AdaptConfig
from .adapt import adapt_encoder

__all__ = ["adapt_cmd"]


@click.command("adapt")
@click.option("--corpus", "corpora", multiple=True, required=True, type=click.Path(path_type=Path, exists=True),
              help="Corpus directory to adapt to (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Model folder to write (e.g. models/guidelines-minilm); `index build --dense-model OUT` reads it.")
@click.option("--base-model", default=None, help="Encoder to start from: local folder (default: bundled all-MiniLM-L6-v2).")
@click.option("--steps", type=click.IntRange(min=1), default=500, show_default=True, help="Optimizer steps.")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Wall-clock budget: stop (and checkpoint) after this many minutes; rerun to resume.")
@click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True,
              help="Pairs per step (the other passages of a batch are the negatives).")
@click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True), default=2e-5, show_default=True)
@click.option("--warmup-steps", type=click.IntRange(min=0), default=50, show_default=True)
@click.option("--hard-negatives", is_flag=True, help="Add one BM25-mined hard negative per pair.")
@click.option("--max-pairs", type=click.IntRange(min=2), default=100_000, show_default=True,
              help="Pairs drawn (seeded) from a large corpus.")
@click.option("--max-seq-length", type=click.IntRange(min=8), default=256, show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--seed", type=int, default=1234, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@json_option
def adapt_cmd(corpora: tuple[Path, ...], out: Path, base_model: str | None, steps: int, max_minutes: float | None,
              batch_size: int, learning_rate: float, warmup_steps: int, hard_negatives: bool, max_pairs: int,
              max_seq_length: int, checkpoint_every: int, seed: int, quiet: bool, as_json: bool) -> None:
    """Adapt the dense encoder to a corpus without relevance labels.

    Trains on (title -> chunk) and (section heading -> chunk) pairs from the corpus with in-batch negatives
    (MultipleNegativesRankingLoss), optionally plus BM25-mined hard negatives. CPU cost: about 1-3 s per step
    of 32 pairs for MiniLM on 2 cores. Checkpoints every --checkpoint-every steps; rerunning the same command
    resumes. Then: medrag index build --corpus CORPUS --dense-model OUT --out indexes/adapted

    \b
      medrag index adapt --corpus corpora/guidelines --out models/guidelines-minilm --steps 200
      medrag index adapt --corpus corpora/nfcorpus --out models/nf --max-minutes 20 --hard-negatives
    """
    config = AdaptConfig(base_model=base_model, steps=steps, max_minutes=max_minutes, batch_size=batch_size,
                         learning_rate=learning_rate, warmup_steps=min(warmup_steps, steps), max_seq_length=max_seq_length,
                         hard_negatives=hard_negatives, max_pairs=max_pairs, checkpoint_every=checkpoint_every,
                         seed=seed)
    manifest = adapt_encoder(corpora, out, config, progress=not quiet and not as_json and sys.stderr.isatty())
    if as_json:
        emit_json({"out": str(out), **manifest})
        return
    loss = manifest["loss"]
    click.echo(f"Adapted model written to {out} ({manifest['steps']}/{manifest['target_steps']} steps, "
               f"{manifest['data']['pairs']} pairs, loss {loss['first']} -> {loss['last']}, {manifest['seconds']} s)")
    if manifest["stopped_by"] == "time":
        click.echo("Stopped by --max-minutes; run the same command again to continue from the checkpoint.")
