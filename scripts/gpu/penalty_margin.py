"""Can repetition_penalty=2.0 change a fixture checkpoint's greedy answer at all? Answered without SGLang.

    python scripts/gpu/penalty_margin.py MODEL_DIR [MODEL_DIR ...]

For each fixture checkpoint (fixtures/models/build_fixture_models.py) and each of the suite's REPEAT_PROMPTS
(pytest_lfm.inputs), rendered as a chat turn with the checkpoint's own chat template and as a plain
completion prompt, this runs transformers' greedy decoding for 32 tokens with repetition_penalty 1.0 and 2.0
(transformers penalises every token of prompt and output alike, dividing a positive logit by the penalty and
multiplying a negative one: the rule of SGLang's BatchedRepetitionPenalizer) and prints whether the two
continuations differ, with the first step's top logits. If the checkpoint itself cannot be moved by the
penalty, a server that returns the same text for both is not evidence that the penalty was dropped.

Needs torch and transformers (the GPU image's, with the SGLang archive's site on PYTHONPATH). CPU is enough.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pytest_lfm.inputs import REPEAT_PROMPTS  # noqa: E402

TOKENS = 32


def _load(model_dir: Path) -> tuple[Any, Any]:
    tok = AutoTokenizer.from_pretrained(model_dir)
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    except ValueError:  # the VL checkpoint is image-text-to-text
        model = AutoModelForImageTextToText.from_pretrained(model_dir, torch_dtype=torch.float32)
    return tok, model.eval()


def _greedy(model: Any, ids: torch.Tensor, penalty: float) -> list[int]:
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=TOKENS, repetition_penalty=penalty, pad_token_id=0)
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


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    for arg in argv:
        model_dir = Path(arg)
        tok, model = _load(model_dir)
        print(f"== {model_dir.name} ({type(model).__name__})")
        for n, prompt in enumerate(REPEAT_PROMPTS):
            chat = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                           tokenize=False)
            for endpoint, text in (("chat", chat), ("completions", prompt)):
                ids = torch.tensor([tok.encode(text, add_special_tokens=endpoint == "completions")])
                plain, penal = _greedy(model, ids, 1.0), _greedy(model, ids, 2.0)
                print(f"prompt {n} {endpoint}: rp=2 differs: {plain != penal}")
                print(f"  rp=1.0: {tok.decode(plain)!r}")
                print(f"  rp=2.0: {tok.decode(penal)!r}")
                print(f"  first step top logits: {_first_step(model, tok, ids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
