"""Fault modes of the reference server: one per regression class a conformance check exists to catch.

Each name maps to what the faulty server does (and the catalogue entry of
``docs/sglang-behaviour.md`` §10 it stands for); :mod:`.fault_hooks` implements each as hooks at the
named points of :mod:`.hooks`. ``tests/`` starts the reference server with each fault and shows that the
checks written to catch it fail on it.
"""

from __future__ import annotations

from collections.abc import Iterable

FAULTS: dict[str, str] = {
    # reasoning (§2, §10 C)
    "think_in_content": "the reasoning parser is bypassed: <think>…</think> stays inline in content",
    "reasoning_in_content": "reasoning text is returned in content (tags removed), reasoning_content null",
    "reasoning_after_content": "streaming sends the reasoning deltas after the content deltas",
    "reasoning_tokens_uncounted": "usage.reasoning_tokens is always 0",
    "thinking_not_forced": "qwen3-thinking is not forced: output without <think> lands in content",
    "reasoning_text_stripped": "the reasoning parser strips whitespace around reasoning and answer (the old "
                               "detector's .strip()): leading newlines of the answer are lost (non-streaming)",
    "think_start_removed_everywhere": "every <think> in the output is removed, not only the leading ones "
                                      "(non-streaming)",
    "reasoning_tokens_all": "usage.reasoning_tokens counts every completion token, the answer's included",
    "stream_reasoning_ignored": "stream_reasoning=false is ignored: reasoning streams in many deltas",
    "separate_reasoning_ignored": "separate_reasoning=false is ignored: reasoning is still split off",
    "unterminated_think_as_content": "a think block cut off before </think> (max_tokens) lands in content, "
                                     "not in reasoning_content",
    "enable_thinking_ignored": "chat_template_kwargs.enable_thinking=false is ignored: the model thinks and "
                               "qwen3 stays forced",
    "reasoning_parser_always_on": "variants launched without --reasoning-parser split <think> blocks as if "
                                  "qwen3 were configured",
    "tool_call_in_reasoning": "a tool-call block right after </think> is kept in reasoning_content instead "
                              "of being parsed (non-streaming)",
    "stream_reasoning_think_leak": "with stream_reasoning=false the one reasoning delta keeps the raw <think> "
                                   "tag (the 0.5.17 bug, fixed in 0.5.23)",
    # tool calls (§1, §5, §10 A/B)
    "tool_call_as_text": "the lfm2 parser is bypassed: tool-call markup stays in content, no tool_calls",
    "tool_call_bad_id": "tool call ids are not 'call_' + 24 hex",
    "tool_call_finish_stop": "finish_reason stays 'stop' when tool_calls are returned",
    "tool_call_stream_index_zero": "every streamed tool-call delta has index 0 (calls merge client-side)",
    "tool_args_ascii_escaped": "tool-call arguments are JSON with non-ASCII escaped and keys re-sorted",
    "tool_parser_drops_nested": "the parser drops calls whose arguments hold nested dicts or lists",
    "tool_choice_ignored": "tool_choice none/required/named is ignored (treated as auto)",
    "tool_text_markup_leak": "when no call parses from tool-call markup, the raw markup stays in normal_text/content",
    "tool_unknown_forwarded": "calls of functions not in tools are returned (as with SGLANG_FORWARD_UNKNOWN_TOOLS=1)",
    "tool_json_form_ignored": "the JSON form inside a tool-call block ({name, arguments|parameters}) is not parsed",
    "tool_args_escape_mangled": "backslashes in string arguments are lost (escapes decoded twice)",
    "tool_args_stringified": "every non-string argument value is returned as a string (7 -> \"7\")",
    "parallel_tool_calls_ignored": "parallel_tool_calls=false is ignored: several calls may come back",
    "tool_result_dropped": "tool-role messages are dropped before the prompt (multi-turn tool context lost)",
    "tool_message_rejected": "a conversation with a tool-role message (a tool result) answers 400",
    # concurrency (LFM2's per-request convolution-state slots)
    "conv_state_leak": "a request decoding while another is in flight starts from the other's stale state: "
                       "its answer turns into the other request's after a few tokens (only under concurrency)",
    # sampling (§3-§4, §10 D)
    "ignore_top_k": "top_k from extra_body never reaches the sampler",
    "ignore_min_p": "min_p from extra_body never reaches the sampler",
    "ignore_top_p": "top_p never reaches the sampler",
    "ignore_repetition_penalty": "repetition_penalty from extra_body never reaches the sampler",
    "repetition_penalty_inverted": "repetition_penalty multiplies positive logits (rewards repeats)",
    "ignore_penalties": "frequency_penalty and presence_penalty never reach the sampler",
    "ignore_seed": "seed is ignored: every request draws from fresh entropy",
    "no_validation": "out-of-range sampling values are accepted (200) instead of 400",
    "error_500": "client input errors answer 500 Internal Server Error instead of 400",
    "usage_wrong": "usage.total_tokens is not prompt_tokens + completion_tokens",
    "sampling_error_generic": "sampling range errors answer 400 'Invalid sampling parameters.' (no field, no range)",
    "seed_constant": "seed is replaced by a constant: every request draws the same sequence",
    "extra_body_rejected": "SGLang's sampler extensions (top_k, min_p, repetition_penalty) answer 400 as unknown",
    "unknown_field_500": "a request with a field SGLang does not know (e.g. a misspelled 'topk') answers 500",
    # completions (§3.2)
    "completions_no_echo": "echo=true does not prepend the prompt",
    "completions_default_max_tokens": "the default max_tokens of /v1/completions is not 16",
    "completions_logprobs_short": "completion logprobs lists miss the last generated token",
    "completions_n_ignored": "n > 1 on /v1/completions returns a single choice",
    "base_chat_500": "a chat request to a checkpoint without post-training (Base) answers 500",
    "stop_ignored": "stop strings are not honoured and matched_stop is null",
    # streaming protocol (§5)
    "stream_no_role_chunk": "the first stream chunk carries content instead of the assistant role",
    "stream_no_done": "the stream ends without 'data: [DONE]'",
    "stream_chunk_tail_dropped": "a stream chunk's text after a closing tag (</think>, <|tool_call_end|>) in the "
                                 "same chunk is lost: streamed and non-streamed output differ only when chunks "
                                 "hold several tokens (--stream-interval > 1)",
    # issue 20 (stop strings while streaming, sampling defaults)
    "stream_stop_prefix_leak": "a stream sends the text of a matched stop string but its last character (the "
                               "held-back prefix is released): streamed text ends with a stop-string prefix "
                               "the non-streamed text does not have",
    "sampling_defaults_ignored": "the server's declared sampling defaults (generation_config / --sampling-defaults) "
                                 "are ignored: a request that omits temperature/top_p/top_k/min_p/"
                                 "repetition_penalty gets the OpenAI defaults",
    "sampling_defaults_undeclared": "chat requests that omit repetition_penalty get 1.3, a default the server does not "
                                    "report (the class of inherited implicit generation defaults, sglang#11610)",
    # vision (§6, §10 E)
    "image_dropped": "image parts are silently dropped before the model sees them",
    "image_stale": "the first image ever seen is used for every later request (prefix-cache class)",
    "bad_media_500": "undecodable or unreachable media answers 500 instead of 400",
    "image_tokens_uncounted": "image tokens are not counted in usage.prompt_tokens",
    "image_cache_collision": "the image cache is keyed by picture size: a different same-size image reuses the first",
    "image_cache_hit_corrupt": "a cache hit on an image seen before serves corrupted image features",
    "image_history_dropped": "images in earlier turns are dropped; only the last user turn's images are seen",
    "bad_media_wedges": "after a media error the server answers 500 to every later chat request",
    "text_only_accepts_image": "text-only variants silently ignore image parts (200) instead of 400",
    "image_tools_500": "a request with both images and tools answers 500",
    "image_load_oom": "after 24 image requests every image request fails with 500 (CUDA out of memory)",
    "image_decode_narrow": "only plain RGB images of 2-1024 px without EXIF rotation decode; others answer 500",
    # media errors and edge input (issue 20 class 7)
    "media_no_timeout": "http image downloads wait without the 3 s timeout: a URL slower than the timeout is "
                        "waited for and answered 200 instead of a 4xx",
    "stream_media_error_500": "a media error on a streaming request answers 500 (the stream path's error "
                              "handling differs from the non-streaming one)",
    "literal_image_marker_500": "a literal '<image>' typed by the user next to a real image breaks the "
                                "placeholder count: 500 instead of a 4xx or an answer",
    "image_order_lost": "the images of a request reach the model sorted by their content digest, not in the "
                        "order they were sent",
    # forced and parallel tool calls (issue 20 class 3)
    "truncated_call_salvaged": "a tool call cut off by max_tokens is closed by the parser and returned as a "
                               "complete call",
    "forced_stream_calls_as_content": "streaming with tool_choice required/named sends the constrained JSON "
                                      "array as content, no tool_calls",
    "forced_tool_reasoning_dropped": "with tool_choice required/named the reasoning is lost (reasoning_content "
                                     "null, non-streaming)",
    "n_parsers_first_choice_only": "with n > 1 only the first choice goes through the reasoning and tool-call "
                                   "parsers: the others carry raw text",
    # chat logprobs (issue 20 class 4)
    "chat_logprobs_short": "non-streamed chat logprobs miss the last generated token",
    "chat_logprobs_stream_null": "streamed chat chunks carry logprobs null even when logprobs are requested",
    "top_logprobs_unsorted": "chat top_logprobs are listed in token-text order, not by logprob",
    "chat_logprobs_unnormalised": "chat logprobs are shifted by a constant (not log-softmax of the logits as on "
                                  "/v1/completions)",
    # a capability the server reports (issue 20: checks behind it are "not run" without it)
    "deterministic_inference_off": "the server runs without --enable-deterministic-inference (SGLang's default): "
                                   "/server_info reports it false and `seed` does not fix the draw",
    "mm_attention_default": "the VL server runs without the recipe's --mm-attention-backend (reports triton_attn)",
    # protocol and info endpoints, caches, delivery (the gaps of the fault tables)
    "models_list_checkpoint_path": "/v1/models lists the checkpoint's local directory instead of the served model "
                                   "name (--served-model-name ignored by the model list)",
    "unknown_model_flat_404": "GET /v1/models/{unknown} answers FastAPI's bare 404 {'detail': 'Not Found'} (no "
                              "route for model cards) instead of the OpenAI error with code model_not_found",
    "server_info_no_version": "/server_info leaves out the SGLang version",
    "recipe_parsers_missing": "the server runs without the recipe's --tool-call-parser and --reasoning-parser: "
                              "/server_info reports them null and no tool-call or reasoning parsing happens",
    "stream_first_token_dropped": "a stream loses its first generated token (an incremental detokenizer whose "
                                  "read offset starts one token late): streamed text differs from non-streamed",
    "prefix_cache_hit_stale_state": "a request whose prompt hits the prefix cache restores a stale convolution "
                                    "state, so its greedy answer differs from the same request's on a cache miss "
                                    "(the hybrid conv-state cache class, PR #23975); /flush_cache empties the cache",
    "created_float": "a chat completion's created is a float of seconds (time.time() without int())",
    "webp_refused": "WebP images are refused (400 'cannot identify image file', as with a Pillow built without "
                    "WebP support) while PNG and JPEG load",
    "skip_special_tokens_ignored": "the request's skip_special_tokens=false is ignored: control tokens such as "
                                   "<|tool_call_start|> are stripped from the text (the server's own tool parsing "
                                   "still sees them)",
    "length_finish_stop": "a /v1/completions choice cut off by max_tokens reports finish_reason 'stop' instead "
                          "of 'length'",
    "regex_ignored": "the regex constraint of a request never reaches the sampler: the output is unconstrained",
}


class Faults:
    """The set of active fault modes."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        names = list(names)
        unknown = [n for n in names if n not in FAULTS]
        if unknown:
            raise ValueError(
                f"unknown fault mode(s) {', '.join(unknown)}; known: {', '.join(sorted(FAULTS))}"
            )
        self.names = frozenset(names)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and name not in FAULTS:
            raise KeyError(f"no fault mode named {name!r}")
        return name in self.names

    def __repr__(self) -> str:
        return f"Faults({sorted(self.names)})"
