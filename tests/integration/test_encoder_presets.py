"""Encoders to their spec on tiny local models: the MedCPT preset (CLS pooling, (title, abstract) sentence
pairs, 512/64 tokens, a separate query encoder) and trust_remote_code as an explicit opt-in."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from medrag.config import ENCODER_PRESETS, EncoderConfig
from medrag.errors import ConfigError, InputError
from medrag.index.encoder import TransformersEncoder, load_encoder

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TITLE = "apixaban in atrial fibrillation"
ABSTRACT = "apixaban reduced stroke and bleeding compared with warfarin in 18,201 patients. " * 60


def _reference(folder: Path, *args: str, max_length: int) -> np.ndarray:
    """What the MedCPT model card does: tokenizer(title, abstract) -> BertModel -> last_hidden_state[:, 0]."""
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder).eval()
    enc = tok(*[[a] for a in args], truncation="longest_first", padding=True, max_length=max_length,
              return_tensors="pt")
    with torch.inference_mode():
        return model(**enc).last_hidden_state[:, 0, :].numpy()


def _medcpt(article: Path, query: Path) -> EncoderConfig:
    return dataclasses.replace(ENCODER_PRESETS["medcpt"], model=str(article), query_model=str(query))


def test_medcpt_preset_is_the_published_spec():
    preset = ENCODER_PRESETS["medcpt"]
    assert preset.model == "ncbi/MedCPT-Article-Encoder" and preset.query_model == "ncbi/MedCPT-Query-Encoder"
    assert preset.pooling == "cls" and preset.passage_format == "pair" and preset.fields == ("title", "text")
    assert preset.max_seq_length == 512 and preset.query_max_seq_length == 64
    assert preset.normalize is False and preset.metric == "ip" and preset.trust_remote_code is False


def test_medcpt_articles_are_cls_pooled_title_abstract_pairs(tiny_bert, tiny_bert_query):
    encoder = load_encoder(_medcpt(tiny_bert, tiny_bert_query))
    assert isinstance(encoder, TransformersEncoder) and encoder.dim == 32
    got = encoder.encode_passages([(TITLE, ABSTRACT)])
    np.testing.assert_allclose(got, _reference(tiny_bert, TITLE, ABSTRACT, max_length=512), rtol=1e-5, atol=1e-5)
    # not the newline-joined text, not mean pooling
    joined = _reference(tiny_bert, f"{TITLE}\n{ABSTRACT}", max_length=512)
    assert not np.allclose(got, joined, atol=1e-4)
    tok = transformers.AutoTokenizer.from_pretrained(tiny_bert)
    enc = tok([TITLE], [ABSTRACT], truncation="longest_first", max_length=512, return_tensors="pt")
    assert enc["input_ids"].shape[1] == 512 and (enc["token_type_ids"] == 1).any()  # a real pair, cut at 512


def test_medcpt_queries_use_the_query_model_and_64_tokens(tiny_bert, tiny_bert_query):
    encoder = load_encoder(_medcpt(tiny_bert, tiny_bert_query))
    query = "which anticoagulant for atrial fibrillation in a patient with severe renal impairment " * 10
    got = encoder.encode_queries([query])
    np.testing.assert_allclose(got, _reference(tiny_bert_query, query, max_length=64), rtol=1e-5, atol=1e-5)
    assert not np.allclose(got, _reference(tiny_bert_query, query, max_length=512), atol=1e-4)
    assert not np.allclose(got, _reference(tiny_bert, query, max_length=64), atol=1e-4)


def test_prefixes_are_config_and_pair_needs_the_transformers_backend(tiny_bert):
    cfg = EncoderConfig(model=str(tiny_bert), backend="transformers", pooling="cls", query_prefix="query: ",
                        normalize=False)
    encoder = load_encoder(cfg)
    np.testing.assert_allclose(encoder.encode_queries(["gout"]), _reference(tiny_bert, "query: gout", max_length=256),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="passage_format 'pair'"):
        EncoderConfig(passage_format="pair")


def _remote_code_model(folder: Path, tiny_bert: Path) -> Path:
    """A model folder whose config names its own Python classes (``auto_map``), as NV-Embed / GritLM do."""
    import shutil

    shutil.copytree(tiny_bert, folder)
    (folder / "modeling_tiny.py").write_text(
        "from transformers import BertConfig, BertModel\n\n"
        "class TinyConfig(BertConfig):\n    model_type = 'tiny-remote'\n\n"
        "class TinyModel(BertModel):\n    config_class = TinyConfig\n",
        encoding="utf-8",
    )
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="tiny-remote",
                  auto_map={"AutoConfig": "modeling_tiny.TinyConfig", "AutoModel": "modeling_tiny.TinyModel"})
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_trust_remote_code_is_an_explicit_opt_in(tiny_bert, tmp_path):
    folder = _remote_code_model(tmp_path / "remote", tiny_bert)
    cfg = EncoderConfig(model=str(folder), backend="transformers", pooling="cls")
    assert cfg.trust_remote_code is False
    with pytest.raises(InputError, match="trust_remote_code"):
        TransformersEncoder(cfg)
    encoder = TransformersEncoder(dataclasses.replace(cfg, trust_remote_code=True))
    assert type(encoder.passage[1]).__name__ == "TinyModel"
    assert encoder.encode_passages(["gout"]).shape == (1, 32)
