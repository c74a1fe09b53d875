"""MedRGB: loading both layouts, deterministic scenario instances, and scoring of hand-written responses."""

from __future__ import annotations

import json

import pytest

from medrag.errors import ConfigError, DataNotFoundError
from medrag.evaluation.medrgb import INSUFFICIENT, build_instance, build_instances, load_medrgb
from medrag.evaluation.medrgb_scoring import (
    aggregate,
    build_prompt,
    exact_match,
    extract_choice,
    score_response,
    token_f1,
)


@pytest.fixture(scope="module")
def questions(fixtures_dir):
    return load_medrgb(fixtures_dir / "eval" / "medrgb")


def _by_id(questions, qid):
    return next(q for q in questions if q.question_id == qid)


def test_repository_layout_loads(questions):
    af = _by_id(questions, "q-af")
    assert af.answer == "B" and [k for k, _ in af.options] == ["A", "B", "C", "D"]
    assert len(af.signal) == 5 and af.signal[0].doc_id == "af-1"
    assert af.sub_qas[3].answer == "ARISTOTLE trial"
    assert af.counterfactuals[0].original_id == "af-1"


def test_bundled_layout_and_text_answers(fixtures_dir):
    (q,) = load_medrgb(fixtures_dir / "eval" / "medrgb" / "bundled.jsonl")
    assert q.answer == "A" and q.options[0] == ("A", "yes")
    assert [d.doc_id for d in q.noise] == ["q-sepsis-n0", "q-sepsis-n1"]
    assert q.counterfactuals[0].original_id == "sep-1"


def test_missing_data_says_where_to_get_it(tmp_path):
    with pytest.raises(DataNotFoundError, match="huggingface.co/datasets/ngotrnghia1811/MedRGB"):
        load_medrgb(tmp_path / "nothing")


def test_instances_follow_signal_percentages(questions):
    for p in (0, 20, 40, 60, 80, 100):
        inst = build_instance(_by_id(questions, "q-af"), "sufficiency", p, n_docs=5,
                              noise_pool=[d for q in questions for d in q.signal])
        assert len(inst.documents) == 5
        assert len(inst.signal_ids) == p // 20
        assert len(inst.noise_ids) == 5 - p // 20
        assert not set(inst.noise_ids) & {d.doc_id for d in _by_id(questions, "q-af").signal}
    again = build_instances(questions, "sufficiency", (40,), n_docs=5)
    assert again == build_instances(questions, "sufficiency", (40,), n_docs=5)  # deterministic
    assert build_instances(questions, "sufficiency", (40,), n_docs=5, seed=1) != again


def test_integration_asks_one_sub_question_per_signal_doc(questions):
    insts = build_instances(questions, "integration", (0, 20, 60), n_docs=5)
    assert {i.p_sig for i in insts} == {20, 60}  # p_sig 0 has nothing to ask about
    for inst in insts:
        assert sorted(s.doc_id for s in inst.sub_qas) == sorted(inst.signal_ids)


def test_robustness_shows_each_source_once(questions):
    inst = build_instance(_by_id(questions, "q-dka"), "robustness", 40, n_docs=5)
    ids = [d.doc_id for d in inst.documents]
    assert len(ids) == len(set(ids)) == 5
    assert len(inst.adversarial_ids) == 3 and len(inst.signal_ids) == 2
    assert len(inst.sub_qas) == 5
    edited = {d.doc_id: d.text for d in inst.documents if d.doc_id in inst.adversarial_ids}
    counterfactual = {c.original_id: c.text for c in _by_id(questions, "q-dka").counterfactuals}
    assert edited == {k: counterfactual[k] for k in edited}
    with pytest.raises(ConfigError):
        build_instances(questions, "robustness", (50,))


def test_standard_scoring(questions):
    inst = build_instance(_by_id(questions, "q-af"), "standard", 100)
    assert len(inst.documents) == 5 and "Options:\nA. Aspirin" in build_prompt(inst)
    right = score_response(inst, '```json\n{"reasoning": "DOACs", "answer_choice": "B"}\n```')
    wrong = score_response(inst, "I think the answer is C.")
    garbage = score_response(inst, "no idea")
    assert (right["correct"], wrong["correct"], garbage["choice"]) == (True, False, None)
    metrics = aggregate([right, wrong, garbage])["standard/p100"]
    assert metrics["accuracy"] == pytest.approx(1 / 3)
    assert metrics["noise_detection_rate"] is None


def test_sufficiency_scoring(questions):
    pool = [d for q in questions for d in q.signal]
    inst = build_instance(_by_id(questions, "q-af"), "sufficiency", 40, n_docs=5, noise_pool=pool)
    noise = list(inst.noise_ids)
    resp1 = json.dumps({"relevant_doc_ids": list(inst.signal_ids), "irrelevant_doc_ids": noise[:2],
                        "answer_choice": "B"})
    inst0 = build_instance(_by_id(questions, "q-af"), "sufficiency", 40, n_docs=5, noise_pool=pool, seed=3)
    resp2 = json.dumps({"irrelevant_doc_ids": [], "answer_choice": "Insufficient information"})
    s1, s2 = score_response(inst, resp1), score_response(inst0, resp2)
    assert s1["noise_detected"] == 2 and s1["noise_shown"] == 3
    assert s2["insufficient"] and s2["choice"] == INSUFFICIENT and not s2["correct"]
    m = aggregate([s1, s2])["sufficiency/p40"]
    assert m["accuracy"] == 0.5 and m["insufficient_rate"] == 0.5
    assert m["noise_detection_rate"] == pytest.approx(2 / 6)


def test_integration_scoring(questions):
    inst = build_instance(_by_id(questions, "q-dka"), "integration", 40, n_docs=5,
                          noise_pool=[d for q in questions for d in q.signal])
    first, second = inst.sub_qas
    response = json.dumps({
        # answered out of order but with the question text repeated: matched by text
        "sub_1": {"question": second.question, "answer": f"The {second.answer}.", "doc_id": second.doc_id},
        "sub_2": {"question": first.question, "answer": "something else entirely", "doc_id": first.doc_id},
        "main": {"reasoning": "fluids first", "answer_choice": "A"},
    })
    s = score_response(inst, response)
    assert s["correct"] and s["sub_em"] == [0.0, 1.0]
    assert s["sub_f1"][1] == 1.0 and s["sub_f1"][0] < 1.0
    unanswered = score_response(inst, '{"main": {"answer_choice": "A"}}')
    assert unanswered["sub_em"] == [0.0, 0.0]
    m = aggregate([s, unanswered])["integration/p40"]
    assert m["sub_exact_match"] == 0.25 and m["accuracy"] == 1.0


def test_robustness_scoring(questions):
    inst = build_instance(_by_id(questions, "q-af"), "robustness", 60, n_docs=5)
    assert len(inst.adversarial_ids) == 2
    subs = {}
    for i, sub in enumerate(inst.sub_qas, 1):
        bad = sub.doc_id in inst.adversarial_ids
        flag_it = bad and sub.doc_id == inst.adversarial_ids[0]  # detects one of the two errors
        subs[f"sub_{i}"] = {"question": sub.question, "doc_id": sub.doc_id,
                            "factual_correctness": "false" if flag_it else "true", "answer": sub.answer}
    subs["main"] = {"answer_choice": "B"}
    s = score_response(inst, json.dumps(subs))
    assert s["adversarial_shown"] == 2 and s["adversarial_detected"] == 1
    m = aggregate([s])["robustness/p60"]
    assert m["factual_error_detection_rate"] == 0.5 and m["sub_exact_match"] == 1.0 and m["accuracy"] == 1.0
    clean = build_instance(_by_id(questions, "q-af"), "robustness", 100, n_docs=5)
    assert aggregate([score_response(clean, "B")])["robustness/p100"]["factual_error_detection_rate"] is None


def test_answer_normalisation():
    assert exact_match("The ARISTOTLE trial!", "aristotle trial") == 1.0
    assert token_f1("regular insulin infusion", "regular insulin") == pytest.approx(0.8)
    assert extract_choice('{"answer_choice": "(C) Clopidogrel"}') == "C"
    assert extract_choice("Answer: insufficient information") == INSUFFICIENT
