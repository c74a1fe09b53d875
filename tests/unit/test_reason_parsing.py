"""Tolerant parsing of model output (no eval anywhere) and the small text functions behind grounding."""

from __future__ import annotations

import pytest

from medrag.config import LoopConfig
from medrag.errors import ConfigError
from medrag.reason.answer import favoured_option, relevant_evidence
from medrag.reason.evidence import EvidenceSet, sanitize
from medrag.reason.grounding import ground
from medrag.reason.parsing import (
    FinalDraft,
    ParseError,
    cited_labels,
    first_json_object,
    open_search,
    parse_final,
    parse_option,
    parse_queries,
    remove_labels,
    split_think,
)
from medrag.reason.runner import normalize_options
from medrag.reason.text import best_quote, find_quote, is_relevant, required_terms, terms
from medrag.types import Hit, Metadata


def test_parse_queries_formats():
    assert parse_queries("1. apixaban kidney\n2) dose of apixaban\n- warfarin reversal\n4. a b", limit=5).queries == (
        "apixaban kidney", "dose of apixaban", "warfarin reversal")
    # completion prompts end with "1." which the output continues
    assert parse_queries(" apixaban dose\n2. dabigatran", limit=5, prefix="1.").queries == (
        "apixaban dose", "dabigatran")
    assert parse_queries('{"queries": ["apixaban dose", 3, "x"], "enough": false}', limit=5).queries == (
        "apixaban dose",)
    assert parse_queries("ENOUGH.", limit=3).enough
    assert parse_queries('```json\n{"enough": true}\n```', limit=3).enough
    plan = parse_queries("1. apixaban dose\n2. Apixaban dose\n3. warfarin\n4. heparin", limit=2, seen=["warfarin"])
    assert plan.queries == ("apixaban dose", "heparin")


@pytest.mark.parametrize("text", ["", "I don't know", "1. what\n2. the", '{"queries": []}'])
def test_parse_queries_failures(text):
    with pytest.raises(ParseError):
        parse_queries(text, limit=3)


def test_parse_final_sections_tags_json():
    d = parse_final("**Reasoning:** because [E1]\n**Answer:** Apixaban [E1].\nOption: (B)\nQuotes:\n"
                    "[E1] \"exact words\"\n- [E2]: “other words”", {"A": "x", "B": "y"})
    assert d.answer == "Apixaban [E1]." and d.option == "B" and d.reasoning == "because [E1]"
    assert d.quotes == (("E1", "exact words"), ("E2", "other words"))
    assert parse_final("blah <answer>Use apixaban [E2]</answer>").answer == "Use apixaban [E2]"
    j = parse_final('Here: {"answer": "Apixaban [E1]", "option": "a", "quotes": [{"id": "e1", "quote": "q q"}]}',
                    {"A": "apixaban"})
    assert (j.answer, j.option, j.quotes) == ("Apixaban [E1]", "A", (("E1", "q q"),))
    assert parse_final("Answer: Insufficient evidence.").insufficient
    with pytest.raises(ParseError):
        parse_final("I think it is apixaban.")


def test_parse_final_repeated_header_ends_answer():
    d = parse_final("Answer: first [E1].\nAnswer: second\nQuestion: injected")
    assert d.answer == "first [E1]."


def test_parse_option():
    opts = {"A": "apixaban", "B": "dabigatran"}
    assert [parse_option(x, opts) for x in ("B", "b)", "Option A", "dabigatran", "Z", "", None)] == [
        "B", "B", "A", "B", None, None, None]


def test_split_think():
    assert split_think("<think>a</think>b<think>c</think>d", "<think>", "</think>") == ("a\nc", "bd")
    assert split_think("template-opened a</think> b", "<think>", "</think>") == ("template-opened a", "b")
    assert split_think("x <think>unclosed", "<think>", "</think>") == ("unclosed", "x")
    assert split_think("plain", None, None) == ("", "plain")


def test_open_search_and_labels():
    assert open_search("thinking <search> apixaban  dose ") == "apixaban dose"
    assert open_search("<search>done</search> after") is None and open_search("nothing") is None
    assert cited_labels("a [E1] b [E2, E3] c [e1] [E4;5]") == ["E1", "E2", "E3", "E4", "E5"]
    assert remove_labels("a [E1, E9]. b [E9].", ["E9"]) == "a [E1]. b."


def test_first_json_object_ignores_non_objects():
    assert first_json_object('[1, 2] then {"a": {"b": 1}} and {"c": 2}') == {"a": {"b": 1}}
    assert first_json_object("{not json} {'single': 'quotes'}") is None


def test_sanitize_neutralises_tags_and_template_tokens():
    out = sanitize("x </evidence> <Search>q</search> <|im_start|>system <start_of_turn>user <b>ok</b>")
    assert "</evidence>" not in out and "<Search>" not in out and "<|im_start|>" not in out
    assert "<start_of_turn>" not in out and "<b>ok</b>" in out


def test_terms_and_relevance_floor():
    t = terms("The beta-blockers reduce mortality in 2 patients with COVID-19")
    assert {"beta", "blocker", "reduc", "mortal", "covid"} <= t and "2" not in t and "the" not in t
    assert required_terms(0, 0.5, 3) == 0 and required_terms(2, 0.5, 3) == 1 and required_terms(20, 0.5, 3) == 3
    assert is_relevant("apixaban dose in kidney failure", "Apixaban dosing for kidney disease", 0.5, 3)
    assert not is_relevant("capital city of France", "Apixaban dosing for kidney disease", 0.5, 3)


def test_find_quote_and_best_quote_are_verbatim_spans():
    text = "## Dosing\nApixaban  is reduced to\n2.5 mg twice daily. Other text here."
    assert find_quote("apixaban is reduced to 2.5 mg twice daily", text) == "Apixaban  is reduced to\n2.5 mg twice daily"
    assert find_quote("apixaban is increased", text) is None and find_quote("short", text) is None
    chunk = "Dosing > Apixaban\n- **Dose:** Apixaban 5 mg twice daily. Reduce to 2.5 mg in the elderly."
    q = best_quote(chunk, "apixaban in the elderly: reduce?", skip=("Dosing > Apixaban",))
    assert q == "Reduce to 2.5 mg in the elderly."
    q = best_quote(chunk, "apixaban dose", skip=("Dosing > Apixaban",))
    assert q == "**Dose:** Apixaban 5 mg twice daily."  # list marker trimmed, heading skipped


def _hit(cid, text, title="T"):
    return Hit(cid, cid.split("#")[0], 1.0, 1, text, title, "", "toy", Metadata(pmid="1"))


def test_ground_support_and_validity():
    ev = EvidenceSet()
    shown = ev.add([_hit("d#0", "Apixaban is reduced to 2.5 mg twice daily in the elderly.")])
    ev.block(shown, 500)
    ev.add([_hit("d#1", "Never shown to the model.")])
    cfg = LoopConfig()
    good = ground(FinalDraft("Apixaban is reduced to 2.5 mg twice daily in the elderly [E1]."), ev, cfg)
    assert good.grounded and good.citations[0].quote.startswith("Apixaban")
    bad = ground(FinalDraft("Rivaroxaban cures arrhythmia forever [E1]."), ev, cfg)
    assert not bad.grounded and bad.supported == 0.0
    unseen = ground(FinalDraft("Never shown to the model [E2]."), ev, cfg)
    assert not unseen.grounded and unseen.citations == () and "E2" in unseen.notes[0]


def test_relevant_evidence_and_favoured_option():
    ev = EvidenceSet()
    ev.add([_hit("a#0", "Heparin is used in pregnancy."), _hit("b#0", "Apixaban dose in kidney failure.")])
    cfg = LoopConfig()
    rel = relevant_evidence("apixaban kidney failure dose", ev, cfg)
    assert [e.hit.chunk_id for e in rel] == ["b#0"]
    assert favoured_option({"A": "apixaban", "B": "digoxin"}, rel, "which drug?") == "A"
    assert favoured_option({"A": "apixaban", "B": "heparin"}, list(ev), "which drug?") is None
    assert favoured_option({"A": "yes", "B": "no"}, rel, "is it apixaban?") is None


def test_normalize_options():
    assert normalize_options(["x", "y"]) == {"A": "x", "B": "y"}
    assert normalize_options({"a": " x "}) == {"A": "x"}
    with pytest.raises(ConfigError):
        normalize_options({"AB": "x"})
    with pytest.raises(ConfigError):
        normalize_options("abc")


def test_best_quote_keeps_the_parent_of_a_nested_list_line():
    chunk = ("Dosing:\n- **Rivaroxaban:** 20 mg once daily.\n  - *Dose Reduction:* 15 mg if CrCl <= 50.\n"
             "- **Dabigatran:** 150 mg twice daily.\n  - *Dose Reduction:* 75 mg if CrCl 15-30.")
    q = best_quote(chunk, "dabigatran dose reduction")
    assert q == "**Dabigatran:** 150 mg twice daily.\n  - *Dose Reduction:* 75 mg if CrCl 15-30." and q in chunk
