"""How leads logs: one format, to standard error, at LEADS_LOG_LEVEL.

Every process that logs configures it: the `leads` command when it starts, and each server
process when it builds the app (uvicorn's worker processes are spawned, so they inherit
nothing the parent configured).
"""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    """Once per process: a later call (the app built in the process `leads` runs in) is a no-op."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level != "debug":
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # httpx logs every request's full URL at INFO; a webhook URL can carry a secret token.
        logging.getLogger("httpx").setLevel(logging.WARNING)
