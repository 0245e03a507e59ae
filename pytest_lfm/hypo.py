"""Hypothesis settings for every property-based check, in one place.

Each check states its example counts: one against the reference server (CI: fast, derandomized, so a CI
failure reproduces) and one against a real server (model-free endpoints are cheap, generation is not).
``LFM_HYPOTHESIS_EXAMPLES`` overrides both, e.g. for a quick smoke run on a slow GPU box. Examples are
always derandomized and no example database is written (the suite runs from read-only site-packages).
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

from pytest_lfm.server.base import Target

ENV = "LFM_HYPOTHESIS_EXAMPLES"


def examples_for(target: Target, *, reference: int, remote: int) -> int:
    """How many examples a check runs against this target."""
    override = os.environ.get(ENV, "").strip()
    if override:
        try:
            return max(1, int(override))
        except ValueError:
            raise ValueError(f"{ENV}={override!r} is not a whole number of examples") from None
    return reference if target.is_test_double else remote


def check_settings(target: Target, *, reference: int, remote: int, deadline_ms: int | None = None) -> settings:
    """Bounded, reproducible settings for one property-based check on one target."""
    return settings(
        max_examples=examples_for(target, reference=reference, remote=remote),
        deadline=None if deadline_ms is None else timedelta(milliseconds=deadline_ms),
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.function_scoped_fixture],
    )
