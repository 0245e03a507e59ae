"""Configuration and mutable state of one reference server, shared by every surface module."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pytest_lfm import lfm2
from pytest_lfm.reference import fault_hooks  # noqa: F401  (registers every fault's hooks)
from pytest_lfm.reference.faults import Faults
from pytest_lfm.reference.hooks import FaultHooks
from pytest_lfm.reference.parsers import ParserBackend, ProjectParsers
from pytest_lfm.reference.vision import ImageFacts
from pytest_lfm.variants import Variant


@dataclass
class Slot:
    """One request's decode-state slot (LFM2 keeps a convolution state per running request)."""

    index: int
    plan: list[Any] | None = None  # the planned tokens of the request decoding in this slot


class SlotTable:
    """The decode-state slots of the running requests.

    Requests are served concurrently (the ASGI app runs each in a worker thread and streams from the
    event loop); a request holds its slot from the start of its handling until its last byte is
    written. ``peak`` is the most requests that were ever in flight at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy: dict[int, Slot] = {}
        self._local = threading.local()
        self.peak = 0

    def acquire(self) -> Slot:
        """The lowest free slot."""
        with self._lock:
            index = next(i for i in range(len(self._busy) + 1) if i not in self._busy)
            slot = self._busy[index] = Slot(index)
            self.peak = max(self.peak, len(self._busy))
            return slot

    def release(self, slot: Slot) -> None:
        """Free ``slot``."""
        with self._lock:
            if self._busy.get(slot.index) is slot:
                del self._busy[slot.index]

    def others(self, slot: Slot | None) -> list[Slot]:
        """The other busy slots, lowest index first."""
        with self._lock:
            return [s for i, s in sorted(self._busy.items()) if s is not slot]

    @property
    def in_flight(self) -> int:
        """Requests being served now."""
        with self._lock:
            return len(self._busy)

    @contextlib.contextmanager
    def bound(self, slot: Slot) -> Iterator[Slot]:
        """Make ``slot`` this thread's current slot (the serving code reads it with :meth:`current`)."""
        previous = getattr(self._local, "slot", None)
        self._local.slot = slot
        try:
            yield slot
        finally:
            self._local.slot = previous

    def current(self) -> Slot | None:
        """The slot bound to this thread (None outside a request, e.g. in unit tests)."""
        slot: Slot | None = getattr(self._local, "slot", None)
        return slot


@dataclass
class ServerState:
    """Configuration and mutable state of one reference server."""

    variant: Variant
    version: str = "0.5.23"
    faults: Faults = field(default_factory=Faults)
    api_key: str | None = None
    context_length: int | None = None
    first_image: ImageFacts | None = None
    started: float = field(default_factory=time.time)
    # vision (§6): the GPU the emulated launch runs on (None: not known), the image cache (by content
    # digest and size, as SGLang's multimodal cache keys images), image requests served, and the wedge
    # flag of the ``bad_media_wedges`` fault.
    hardware: str | None = None
    image_cache: dict[str, ImageFacts] = field(default_factory=dict)
    image_requests: int = 0
    media_wedged: bool = False
    # state a fault mode keeps between requests (e.g. the prefix cache of ``prefix_cache_hit_stale_state``);
    # empty and unused on a server without faults
    fault_scratch: dict[str, Any] = field(default_factory=dict)
    # the tool-call and reasoning parsers: the project's (pytest_lfm.lfm2, default) or a real SGLang
    # release's (pytest_lfm.reference.upstream.UpstreamParsers, ``--parsers sglang``)
    parsers: ParserBackend = field(default_factory=ProjectParsers)
    """The default (the project's parsers) takes the emulated release's reasoning rules in __post_init__."""
    # injected latency (``--ttft-delay-ms`` / ``--tpot-delay-ms``), applied by the SSE writer in app.py: the
    # first token chunk waits ttft, each later one tpot more (absolute schedule), for the bench's accuracy tests
    ttft_delay_ms: float = 0.0
    tpot_delay_ms: float = 0.0
    # tokens per stream chunk (SGLang's ``--stream-interval``)
    stream_interval: int = 1
    # the sampling defaults the server declares (``--sampling-defaults``, as a checkpoint's generation_config
    # under SGLang's ``--sampling-defaults model``): applied to chat requests that omit the field, reported
    # in /model_info's preferred_sampling_params
    sampling_defaults: dict[str, float] | None = None
    slots: SlotTable = field(default_factory=SlotTable)
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards the image cache and counters
    _hooks: FaultHooks | None = field(default=None, repr=False)

    @property
    def hooks(self) -> FaultHooks:
        """The active faults' hooks (rebuilt when :attr:`faults` is replaced)."""
        if self._hooks is None or self._hooks.faults is not self.faults:
            self._hooks = FaultHooks(self.faults)
        return self._hooks

    @property
    def model_name(self) -> str:
        """The served model name (``--model-path`` by default)."""
        return self.variant.hf_path

    @property
    def context(self) -> int:
        """The context length the server enforces."""
        return self.context_length or self.variant.context_length

    def __post_init__(self) -> None:
        if isinstance(self.parsers, ProjectParsers) and self.parsers.dialect is None:
            self.parsers = ProjectParsers(self.dialect)

    @property
    def dialect(self) -> lfm2.Dialect:
        """Parser behaviour of the emulated version."""
        return lfm2.Dialect.for_version(self.version)
