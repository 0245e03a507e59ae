"""Can repetition_penalty=2.0 change a fixture checkpoint's greedy answer at all? Answered without SGLang.

    python scripts/gpu/penalty_margin.py MODEL_DIR [MODEL_DIR ...] [--server URL]

For each fixture checkpoint (fixtures/models/build_fixture_models.py) and each of the suite's REPEAT_PROMPTS
(pytest_lfm.inputs), rendered as a chat turn with the checkpoint's own chat template and as a plain
completion prompt, this runs transformers' greedy decoding for 32 tokens without a penalty and with
repetition_penalty 2.0 under two rules — "prompt+output" (transformers' rule: every token seen so far) and
"output" (SGLang 0.5.17's BatchedRepetitionPenalizer: generated tokens only); both divide a positive logit by
the penalty and multiply a negative one — and prints whether each penalised continuation differs from the
plain one, with the first step's top logits. If the checkpoint itself cannot be moved by the penalty, a
server that returns the same text for both is not evidence that the penalty was dropped.

With ``--server URL`` (an SGLang server on the first MODEL_DIR) it also asks the server, per prompt, for the
greedy chat answer's first tokens with ``top_logprobs`` at repetition_penalty 1.0 and 2.0, printed next to
transformers' step-1 log-probabilities: equal gaps between the top tokens mean both compute the same logits,
and then a server whose rp=2 answer equals its rp=1 answer did not apply the penalty.

Needs torch and transformers (the GPU image's, with the SGLang archive's site on PYTHONPATH). CPU is enough.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pytest_lfm.inputs import REPEAT_PROMPTS

TOKENS = 32


def _load(model_dir: Path) -> tuple[Any, Any]:
    tok = AutoTokenizer.from_pretrained(model_dir)
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    except ValueError:  # the VL checkpoint is image-text-to-text
        model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    return tok, model.eval()


class _OutputOnlyPenalty(LogitsProcessor):
    """SGLang 0.5.17's rule: only tokens generated so far are penalised (not the prompt's)."""

    def __init__(self, prompt_len: int, penalty: float) -> None:
        self.prompt_len, self.penalty = prompt_len, penalty

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        out = input_ids[:, self.prompt_len:]
        if out.shape[1]:
            seen = scores.gather(1, out)
            scores = scores.scatter(1, out, torch.where(seen > 0, seen / self.penalty, seen * self.penalty))
        return scores


def _greedy(model: Any, ids: torch.Tensor, penalty: float, rule: str) -> list[int]:
    extra: dict[str, Any] = {}
    if rule == "output":
        extra["logits_processor"] = LogitsProcessorList([_OutputOnlyPenalty(ids.shape[1], penalty)])
    else:
        extra["repetition_penalty"] = penalty
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=TOKENS, pad_token_id=0, **extra)
    return [int(t) for t in out[0, ids.shape[1]:]]


def _first_step(model: Any, tok: Any, ids: torch.Tensor) -> str:
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].float()
    in_prompt = set(ids[0].tolist())
    top = torch.topk(logits, 5)
    cells = []
    for value, index in zip(top.values.tolist(), top.indices.tolist(), strict=True):
        seen = "in prompt" if index in in_prompt else "new"
        cells.append(f"{tok.decode([index])!r} {value:.3f} ({seen})")
    return "; ".join(cells)


def _server_tokens(server: str, prompt: str, penalty: float) -> str:
    """The server's greedy chat answer's first 4 tokens with their top-5 log-probabilities."""
    body = {"model": "default", "messages": [{"role": "user", "content": prompt}], "temperature": 0,
            "max_tokens": 4, "logprobs": True, "top_logprobs": 5, "repetition_penalty": penalty}
    request = urllib.request.Request(server.rstrip("/") + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        choice = json.loads(response.read())["choices"][0]
    steps = []
    for entry in (choice.get("logprobs") or {}).get("content") or []:
        tops = ", ".join(f"{t['token']!r} {t['logprob']:.3f}" for t in entry.get("top_logprobs", []))
        steps.append(f"{entry['token']!r} [{tops}]")
    return " | ".join(steps) or repr(choice)


def _hf_logprobs(model: Any, tok: Any, ids: torch.Tensor) -> str:
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)
    top = torch.topk(logprobs, 5)
    return ", ".join(f"{tok.decode([i])!r} {v:.3f}" for v, i in zip(top.values.tolist(), top.indices.tolist(),
                                                                      strict=True))


def main(argv: list[str]) -> int:
    server = None
    if "--server" in argv:
        at = argv.index("--server")
        server, argv = argv[at + 1], argv[:at] + argv[at + 2:]
    if not argv:
        print(__doc__)
        return 2
    if server:
        tok, model = _load(Path(argv[0]))
        print(f"== {Path(argv[0]).name} against {server}")
        for n, prompt in enumerate(REPEAT_PROMPTS):
            chat = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                           tokenize=False)
            ids = torch.tensor([tok.encode(chat, add_special_tokens=False)])
            print(f"prompt {n} transformers step 1: {_hf_logprobs(model, tok, ids)}")
            for penalty in (1.0, 2.0):
                print(f"prompt {n} server rp={penalty}: {_server_tokens(server, prompt, penalty)}")
        return 0
    for arg in argv:
        model_dir = Path(arg)
        tok, model = _load(model_dir)
        print(f"== {model_dir.name} ({type(model).__name__})")
        for n, prompt in enumerate(REPEAT_PROMPTS):
            chat = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                           tokenize=False)
            # multimodal servers may hand the template OpenAI content parts instead of a string
            parts = tok.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": prompt}]}],
                                            add_generation_prompt=True, tokenize=False)
            # "chat+special": the rendered chat tokenised with the tokenizer's special tokens added as well (a
            # multimodal processor called on the rendered prompt does this: BOS twice when the template has one)
            for endpoint, text in (("chat", chat), ("chat-parts", parts), ("chat+special", chat),
                                   ("completions", prompt)):
                if endpoint == "chat-parts" and parts == chat:
                    print(f"prompt {n} chat-parts: renders as chat")
                    continue
                ids = torch.tensor([tok.encode(text, add_special_tokens=endpoint in ("completions", "chat+special"))])
                print(f"prompt {n} {endpoint}: first ids {ids[0, :4].tolist()}")
                plain = _greedy(model, ids, 1.0, "prompt+output")
                print(f"prompt {n} {endpoint}:")
                print(f"  rp=1.0: {tok.decode(plain)!r}")
                for rule in ("prompt+output", "output"):
                    penal = _greedy(model, ids, 2.0, rule)
                    print(f"  rp=2.0 ({rule}): differs: {plain != penal}: {tok.decode(penal)!r}")
                print(f"  first step top logits: {_first_step(model, tok, ids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
