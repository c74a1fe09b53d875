"""Biomedical tokenizer and the index configs."""

from __future__ import annotations

import pytest

from medrag.config import (
    BM25Config,
    EncoderConfig,
    FaissConfig,
    FusionConfig,
    IndexConfig,
    config_to_dict,
    index_config_from_dict,
)
from medrag.errors import ConfigError
from medrag.index.tokenizer import BiomedicalTokenizer, tokenizer_spec


def test_hyphenated_terms_yield_parts_and_optionally_the_compound():
    split = BiomedicalTokenizer(BM25Config(stemmer=None))
    both = BiomedicalTokenizer(BM25Config(stemmer=None, hyphens="both"))
    assert split.analyze("Beta-blockers in COVID-19") == ["beta", "blockers", "covid", "19"]
    assert both.analyze("Beta-blockers in COVID-19") == ["beta", "blockers", "betablockers", "covid", "19", "covid19"]
    # a query spelled without the hyphen still matches the parts
    assert set(split.analyze("beta blockers")) <= set(split.analyze("beta-blockers"))


def test_greek_letters_expand_consistently_or_stay():
    expand = BiomedicalTokenizer(BM25Config(stemmer=None))
    assert expand.analyze("β-blocker") == expand.analyze("beta-blocker") == ["beta", "blocker"]
    assert expand.analyze("TNFα and TNF-alpha") == ["tnf", "alpha", "tnf", "alpha"]
    assert expand.analyze("Β") == expand.analyze("β")  # upper case too
    keep = BiomedicalTokenizer(BM25Config(stemmer=None, greek="keep"))
    assert keep.analyze("β-blocker") == ["β", "blocker"]


def test_decimals_and_doses_stay_whole():
    tok = BiomedicalTokenizer(BM25Config(stemmer=None))
    assert tok.analyze("apixaban 2.5 mg, INR 2.0-3.0.") == ["apixaban", "2.5", "mg", "inr", "2.0", "3.0"]
    assert tok.analyze("end of sentence 3. Next") == ["end", "sentence", "3", "next"]


def test_stopwords_and_stemming():
    tok = BiomedicalTokenizer(BM25Config())
    assert tok.analyze("The patients treated with statins") == ["patient", "treat", "statin"]
    none = BiomedicalTokenizer(BM25Config(stopwords="none", stemmer=None))
    assert none.analyze("the patients") == ["the", "patients"]
    custom = BiomedicalTokenizer(BM25Config(stopwords=("patients",), stemmer=None))
    assert custom.analyze("the patients") == ["the"]


def test_term_ids_apply_the_same_rules_as_analyze():
    tok = BiomedicalTokenizer(BM25Config(hyphens="both"))
    vocab = tok.term_ids()
    texts = ["Anti-TNFα therapy in 2.5% of the patients", "β-blockers after MI", "the of and", "Patients treated"]
    ids, lengths = vocab.batch(texts)
    terms = {i: t for t, i in vocab.term_to_id.items()}
    decoded, start = [], 0
    for n in lengths.tolist():
        decoded.append([terms[i] for i in ids[start : start + n].tolist()])
        start += n
    assert decoded == [tok.analyze(t) for t in texts]
    assert lengths.tolist()[2] == 0  # stopwords only
    assert sorted(vocab.term_to_id.values()) == list(range(len(vocab.term_to_id)))


def test_spec_is_recorded():
    spec = tokenizer_spec(BM25Config())
    assert spec["stemmer"] == "english" and spec["greek"] == "expand" and spec["name"] == "medrag-biomedical"


@pytest.mark.parametrize(
    "make",
    [
        lambda: BM25Config(b=1.5),
        lambda: BM25Config(method="bm42"),
        lambda: BM25Config(fields=("abstract",)),
        lambda: BM25Config(stopwords="klingon"),
        lambda: EncoderConfig(metric="cosine"),
        lambda: EncoderConfig(device="tpu"),
        lambda: EncoderConfig(backend="onnx", query_model="x"),
        lambda: FaissConfig(factory=" "),
        lambda: FusionConfig(weights=(0, 0)),
        lambda: FusionConfig(normalization="softmax"),
    ],
)
def test_invalid_configs_raise_config_error(make):
    with pytest.raises(ConfigError):
        make()


def test_unknown_stemmer_language_is_a_config_error():
    with pytest.raises(ConfigError, match="stemmer"):
        BiomedicalTokenizer(BM25Config(stemmer="klingon"))


def test_index_config_round_trips_through_its_dict():
    config = IndexConfig(bm25=BM25Config(fields=("title", "text")), fusion=FusionConfig(weights=(0.6, 0.4)))
    assert index_config_from_dict(config_to_dict(config)) == config
