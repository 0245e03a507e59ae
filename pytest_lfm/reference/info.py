"""Information and admin endpoints: ``/server_info``, ``/model_info``, ``/v1/models``."""

from __future__ import annotations

from typing import Any

from pytest_lfm.reference import hooks as H
from pytest_lfm.reference.state import ServerState


def server_info(st: ServerState) -> dict[str, Any]:
    """``GET /server_info``: resolved server args as SGLang names them, plus ``version``."""
    v = st.variant
    return st.hooks(H.INFO, {
        "model_path": v.hf_path, "tokenizer_path": v.hf_path, "served_model_name": v.hf_path,
        "context_length": st.context, "dtype": "auto", "tp_size": 1, "trust_remote_code": True,
        "tool_call_parser": v.tool_call_parser, "reasoning_parser": v.reasoning_parser,
        "attention_backend": "reference", "mm_attention_backend": mm_attention_backend(st),
        "mem_fraction_static": v.recipe.mem_fraction_static, "chunked_prefill_size": 8192,
        "stream_interval": st.stream_interval,  # tokens per stream chunk (--stream-interval)
        # SGLang's --sampling-defaults: "model" applies the checkpoint's generation_config (here the declared
        # --sampling-defaults, reported in /model_info); without declared defaults the reference is "openai"
        "sampling_defaults": "model" if st.sampling_defaults else "openai",
        "disable_radix_cache": False, "enable_torch_compile": False, "random_seed": 0,
        # the reference honours `seed` (SGLang: only with this flag)
        "enable_deterministic_inference": st.hooks(H.DETERMINISTIC_INFERENCE, True),
        "api_key": None if st.api_key is None else "***", "launch_command": "python -m pytest_lfm.reference",
        "version": st.version, "frontend": "python", "reference_server": True,
        "reference_faults": sorted(st.faults.names),
        "reference_parsers": st.parsers.name,
    }, endpoint="/server_info")


def model_info(st: ServerState) -> dict[str, Any]:
    """``GET /model_info``."""
    v = st.variant
    arch = {"dense": "Lfm2ForCausalLM", "moe": "Lfm2MoeForCausalLM", "vl": "Lfm2VlForConditionalGeneration"}
    return st.hooks(H.INFO, {
        "model_path": v.hf_path, "tokenizer_path": v.hf_path, "served_model_name": v.hf_path,
        "is_generation": True,
        "preferred_sampling_params": dict(st.sampling_defaults) if st.sampling_defaults else None, "weight_version": "default",
        "reasoning_parser": v.reasoning_parser, "tool_call_parser": v.tool_call_parser,
        "has_image_understanding": v.supports("vision"), "has_audio_understanding": False,
        "model_type": {"dense": "lfm2", "moe": "lfm2_moe", "vl": "lfm2_vl"}[v.architecture],
        "architectures": [arch[v.architecture]],
    }, endpoint="/model_info")


def models_list(st: ServerState) -> dict[str, Any]:
    """``GET /v1/models``."""
    return st.hooks(H.MODELS_LIST, {
        "object": "list", "data": [{"id": st.model_name, "object": "model", "created": int(st.started),
                                    "owned_by": "sglang", "root": st.model_name, "parent": None,
                                    "max_model_len": st.context}]})


def mm_attention_backend(st: ServerState) -> str | None:
    """``--mm-attention-backend`` as the cookbook recipe sets it for the emulated GPU (§6, §11)."""
    if not st.variant.supports("vision"):
        return None
    if st.hardware is None:
        return "reference"
    if st.hooks.active_at(H.MM_ATTENTION_BACKEND):
        return st.hooks(H.MM_ATTENTION_BACKEND, "")
    from pytest_lfm.hardware import get_hardware

    return get_hardware(st.hardware).mm_attention_backend
