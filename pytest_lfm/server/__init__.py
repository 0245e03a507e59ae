"""What the plugin talks to: the :class:`Target` every check sees, HTTP probing, and the processes behind
reference and launch mode (the handles that build targets live in :mod:`pytest_lfm.targets`)."""

from pytest_lfm.server.base import Target
from pytest_lfm.server.http import ProbeResult, make_http_client, probe

__all__ = ["ProbeResult", "Target", "make_http_client", "probe"]
