"""Plumbing of the vLLM backend with an injected stand-in for the ``vllm`` module.

vLLM needs a CUDA GPU and cannot be installed here. The stand-in records what the backend passes to
``vllm.LLM``, ``SamplingParams`` and ``LLM.generate``; it checks our side of the contract (one generate call
per batch, parameter mapping, chat rendering to token ids, result order) — not vLLM itself.
"""

from __future__ import annotations

import types

from medrag.config import MODEL_PROFILES, LLMConfig, ModelProfile
from medrag.llm import GenerationParams
from medrag.llm.vllm_backend import VLLMBackend


class _Tokenizer:
    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True, chat_template=None):
        text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return "<bos>" + text + ("<assistant>" if add_generation_prompt else "") + (chat_template or "")

    def encode(self, text, add_special_tokens=True):
        return [ord(c) for c in text]


def _fake_vllm():
    record = {"init": None, "generate": [], "sampling": []}

    class SamplingParams:
        def __init__(self, **kw):
            record["sampling"].append(kw)
            self.kw = kw

    class LLM:
        def __init__(self, **kw):
            record["init"] = kw

        def get_tokenizer(self):
            return _Tokenizer()

        def generate(self, prompts, sampling_params, use_tqdm=True):
            record["generate"].append((prompts, sampling_params))
            outs = []
            for i, p in enumerate(prompts):
                text = f"out{i}"
                outs.append(types.SimpleNamespace(
                    prompt_token_ids=p["prompt_token_ids"] if isinstance(p, dict) else [1, 2],
                    outputs=[types.SimpleNamespace(text=text, finish_reason="stop", token_ids=[7, 8, 9])]))
            return outs

    return types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams), record


def test_engine_args_and_one_generate_call_per_batch():
    mod, rec = _fake_vllm()
    cfg = LLMConfig(tensor_parallel_size=2, gpu_memory_utilization=0.8, max_model_len=8192, dtype="bfloat16", seed=3)
    llm = VLLMBackend("zou-lab/BioMed-R1-8B", MODEL_PROFILES["reasoning"], cfg, vllm_module=mod)
    assert rec["init"] == {"model": "zou-lab/BioMed-R1-8B", "tensor_parallel_size": 2, "gpu_memory_utilization": 0.8,
                           "dtype": "bfloat16", "seed": 3, "max_model_len": 8192}
    out = llm.generate(["a", "b", [{"role": "user", "content": "c"}]],
                       GenerationParams(max_tokens=5, temperature=0.0, stop=("</search>",)))
    assert len(rec["generate"]) == 1 and len(rec["generate"][0][0]) == 3
    assert [g.text for g in out] == ["out0", "out1", "out2"] and out[2].completion_tokens == 3
    assert rec["sampling"][0] == {"max_tokens": 5, "temperature": 0.0, "top_p": 1.0, "stop": ["</search>"], "seed": 3}


def test_chat_prompts_rendered_to_token_ids_with_continuation():
    mod, rec = _fake_vllm()
    profile = ModelProfile(name="p", system_role=False, chat_template="{{tmpl}}")
    llm = VLLMBackend("m", profile, vllm_module=mod)
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
            {"role": "assistant", "content": "<think>go"}]
    prompt = llm.to_vllm_prompt(msgs)
    text = "".join(chr(t) for t in prompt["prompt_token_ids"])
    # system folded into the user turn, the profile's template passed through, the assistant text continued
    assert text == "<bos><user>S\n\nU</user><assistant>{{tmpl}}<think>go"
    assert llm.to_vllm_prompt("raw completion") == "raw completion"


def test_finish_reason_length_and_profile_context_length():
    """The profile's max_model_len reaches vllm.LLM; 'length' is passed on so budget forcing can act."""
    mod, rec = _fake_vllm()

    def cut(prompts, sampling_params, use_tqdm=True):
        return [types.SimpleNamespace(prompt_token_ids=[1], outputs=[types.SimpleNamespace(
            text="<think>still", finish_reason="length", token_ids=[5, 6])]) for _ in prompts]

    llm = VLLMBackend("zou-lab/BioMed-R1-8B", MODEL_PROFILES["biomed-r1-8b"], vllm_module=mod)
    assert rec["init"]["max_model_len"] == 32768
    llm._llm.generate = cut
    [gen] = llm.generate(["q"], GenerationParams(max_tokens=2))
    assert gen.finish_reason == "length" and gen.completion_tokens == 2
