"""The honeypot: a form field named ``website`` that people never see, and bots fill in.

The parser (leads/intake/submission.py) only notes whether ``website`` held anything
(``Submission.honeypot``); this rule turns that into the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from leads.abuse.rules import Reason, RuleSetup, Screened, Visit


class HoneypotReason(Reason):
    HONEYPOT = "honeypot", "The hidden `website` field was filled in."


class Honeypot:
    name: ClassVar[str] = "honeypot"
    reasons: ClassVar[type[Reason]] = HoneypotReason

    @classmethod
    def from_settings(cls, setup: RuleSetup) -> Honeypot:
        return cls()

    async def check(self, submission: Screened, visit: Visit) -> Sequence[Reason]:
        return [HoneypotReason.HONEYPOT] if submission.honeypot else []
