"""Server handles behind one interface: an attached server, or the bundled reference server."""

from pytest_lfm.server.base import Target
from pytest_lfm.server.http import ProbeResult, make_http_client, probe

__all__ = ["ProbeResult", "Target", "make_http_client", "probe"]
