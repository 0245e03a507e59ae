"""The bundled reference server: an SGLang-compatible LFM2.5 server that runs anywhere.

A test double, not a target to please: it answers from the request it gets, with a real sampler over
a small deterministic language model (:mod:`.model`), SGLang's parsing rules (:mod:`pytest_lfm.lfm2`),
real image decoding (:mod:`.vision`), and SGLang's validation table (:mod:`.validation`). The serving
layer is one module per surface (see :mod:`.serving`); requests are served concurrently. Fault modes
(:mod:`.faults`) reproduce the regression classes the conformance checks exist to catch, each as hooks
(:mod:`.fault_hooks`) at the named points of :mod:`.hooks`. Start it with
``python -m pytest_lfm.reference --variant ID`` or ``pytest --lfm-server=reference``.
"""
