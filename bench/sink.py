"""A local SMTP sink for the benchmark: accepts every message on 127.0.0.1 and writes one line
per message, ``<time.monotonic()> <lead id>``, to a file.

Run in its own process (``python bench/sink.py PORT FILE``) so that reading mail never holds
the load generator's GIL. CLOCK_MONOTONIC is system-wide on Linux, so these times compare
with the send times taken in the orchestrator. Prints ``ready`` once it accepts connections;
stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import email
import email.policy
import re
import signal
import sys
import time
from typing import IO, Any

from aiosmtpd.controller import Controller

# The clinic's email links to the lead: <public_url>/staff/leads/<uuid>.
LEAD_LINK = re.compile(
    rb"/staff/leads/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)


def lead_id(raw: bytes) -> str:
    """The lead id in the link; parses the MIME parts only if the raw bytes are encoded."""
    found = LEAD_LINK.search(raw)
    if found:
        return found.group(1).decode()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for part in message.walk():
        if part.get_content_maintype() == "text":
            found = LEAD_LINK.search(str(part.get_content()).encode())
            if found:
                return found.group(1).decode()
    return "unknown"


class Recorder:
    def __init__(self, out: IO[str]):
        self.out = out

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        arrived = time.monotonic()
        raw = envelope.original_content or envelope.content
        self.out.write(f"{arrived:.6f} {lead_id(raw)}\n")
        self.out.flush()
        return "250 OK"


def main(argv: list[str]) -> int:
    port, path = int(argv[1]), argv[2]
    with open(path, "a", encoding="ascii") as out:
        controller = Controller(Recorder(out), hostname="127.0.0.1", port=port)
        controller.start()
        try:
            print("ready", flush=True)
            signal.sigwait({signal.SIGTERM, signal.SIGINT})
        finally:
            controller.stop()
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    sys.exit(main(sys.argv))
