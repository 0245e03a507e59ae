"""One description of a reference server (:class:`ReferenceOptions`) drives both ways of running it: the
child process the plugin and the tests start, and the in-thread server tests call directly."""

from __future__ import annotations

from pytest_lfm.server.reference import API_KEY_ENV, ReferenceOptions, ReferenceProcess

OPTIONS = ReferenceOptions("VL-450M", faults=("usage_wrong",), api_key="s3cret-key", version="0.5.17",
                           hardware="b200", context_length=4096, ttft_delay_ms=50.0, tpot_delay_ms=5.0)


def test_argv_names_every_option_but_keeps_the_api_key_out() -> None:
    argv = OPTIONS.argv()
    assert argv == ["--variant", "VL-450M", "--fault", "usage_wrong", "--sglang-version", "0.5.17",
                    "--hardware", "b200", "--context-length", "4096", "--ttft-delay-ms", "50.0",
                    "--tpot-delay-ms", "5.0", "--api-key-env", API_KEY_ENV]
    assert "s3cret-key" not in " ".join(argv) and "s3cret-key" not in repr(OPTIONS)
    assert OPTIONS.env()[API_KEY_ENV] == "s3cret-key"


def test_in_thread_server_gets_the_same_options() -> None:
    state = OPTIONS.in_thread().state
    assert (state.variant.id, state.version, state.hardware) == ("VL-450M", "0.5.17", "b200")
    assert (state.ttft_delay_ms, state.tpot_delay_ms, state.api_key) == (50.0, 5.0, "s3cret-key")
    assert "usage_wrong" in state.faults


def test_process_keyword_arguments_are_the_options() -> None:
    proc = ReferenceProcess("VL-450M", ["usage_wrong"], "s3cret-key", "0.5.17", None, "b200", context_length=4096,
                            ttft_delay_ms=50.0, tpot_delay_ms=5.0)
    assert proc.options == OPTIONS and proc.variant_id == "VL-450M"
