"""The spam-rule registry: built-ins in their order, one more rule added the documented way
(leads/abuse/rules.py), and names and reasons that must stay unique."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import httpx
import pytest

from leads.abuse.defaults import built_in_rules
from leads.abuse.honeypot import HoneypotReason
from leads.abuse.rules import Reason, RuleSetup, Screened, Visit
from leads.core.forms import FormCatalog, load_forms
from leads.intake.defence import Defences
from leads.intake.submission import parse_submission
from tests.clock import FakeClock
from tests.conftest import make_settings


class ShoutingReason(Reason):
    SHOUTING = "shouting", "The message is written in capitals."


class Shouting:
    name: ClassVar[str] = "shouting"
    reasons: ClassVar[type[Reason]] = ShoutingReason

    @classmethod
    def from_settings(cls, setup: RuleSetup) -> Shouting:
        return cls()

    async def check(self, submission: Screened, visit: Visit) -> Sequence[Reason]:
        text = submission.message or ""
        return [ShoutingReason.SHOUTING] if text.isupper() else []


def test_the_built_in_rules_run_in_the_documented_order() -> None:
    assert [rule.name for rule in built_in_rules()] == [
        "honeypot", "time trap", "captcha", "content",
    ]  # fmt: skip
    reasons = built_in_rules().reasons()
    assert len({r.value for r in reasons}) == len(reasons) == 13
    assert all(r.explanation.endswith(".") for r in reasons)


async def test_a_registered_rule_runs_after_the_built_ins(tmp_path) -> None:
    rules = built_in_rules()
    rules.register(Shouting)
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", blocked_terms="casino")
    forms: FormCatalog = load_forms(None)
    async with httpx.AsyncClient() as http:
        defences = Defences.from_settings(settings, http, clock=FakeClock(), rules=rules)
        try:
            raw = {"name": "Ann", "email": "ann@example.com", "consent": True, "website": "x"}
            quiet = parse_submission(
                {**raw, "message": "Casino night?"}, forms=forms, default_region="US"
            )
            loud = parse_submission(
                {**raw, "message": "CASINO NIGHT?"}, forms=forms, default_region="US"
            )
            judged = [await defences.screen(s, ip="203.0.113.7") for s in (quiet, loud)]
        finally:
            await defences.close()
    assert [s.spam_reason for s in judged] == [
        "honeypot,blocked_term",
        "honeypot,blocked_term,shouting",
    ]


def test_a_rule_name_or_reason_is_registered_once() -> None:
    rules = built_in_rules()

    class Again(Shouting):
        name: ClassVar[str] = "honeypot"

    with pytest.raises(ValueError, match="'honeypot' is already registered"):
        rules.register(Again)

    class Stolen(Shouting):
        name: ClassVar[str] = "stolen"
        reasons: ClassVar[type[Reason]] = HoneypotReason

    with pytest.raises(ValueError, match=r"reasons already given by another rule: \['honeypot'\]"):
        rules.register(Stolen)
