"""Spam rules: the one way a check that judges a submission plugs in.

A rule is a class with a name, the reasons it can give, a way to build it from the settings,
and one async method::

    class Honeypot:
        name: ClassVar[str] = "honeypot"                    # "Set by" in docs/spam.md
        reasons: ClassVar[type[Reason]] = HoneypotReason    # all it can give, declared once

        @classmethod
        def from_settings(cls, setup: RuleSetup) -> Honeypot | None:
            return cls()                        # None: off with these settings

        async def check(self, submission: Screened, visit: Visit) -> Sequence[Reason]:
            return [HoneypotReason.HONEYPOT] if submission.honeypot else []

``Defences.screen`` (leads/intake/defence.py) asks every rule of a :class:`SpamRules` in turn
and flags the submission with whatever reasons they found, in that order. A rule never
refuses and never raises for what a visitor sent: a submission with reasons is stored,
flagged, and staff can release it. The built-in rules are registered in ``defaults.py``
exactly as another rule would be.

A reason is a :class:`Reason`: a ``StrEnum`` member whose value is what is stored in
``spam_reason`` and whose ``explanation`` is the line docs/spam.md shows for it (a test
checks the two agree).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Protocol, Self

from leads.core.forms import Form
from leads.outbound import HTTPClient
from leads.settings import Settings


class Reason(StrEnum):
    """Base of each rule's reasons: ``NAME = "stored_code", "One line for the docs."``."""

    explanation: str

    def __new__(cls, code: str, explanation: str) -> Self:
        member = str.__new__(cls, code)
        member._value_ = code
        member.explanation = explanation
        return member


class Screened(Protocol):
    """What a rule may read of a parsed submission (leads.intake.submission.Submission)."""

    @property
    def form(self) -> Form: ...
    @property
    def name(self) -> str: ...
    @property
    def message(self) -> str | None: ...
    @property
    def honeypot(self) -> bool: ...
    @property
    def form_token(self) -> str | None: ...
    @property
    def captcha_token(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Visit:
    """What a rule may know of the request besides the submission."""

    client_ip: str | None
    now: float  # seconds since the epoch, read once from the defences' clock


@dataclass(frozen=True, slots=True)
class RuleSetup:
    """What a rule is built from."""

    settings: Settings
    http: HTTPClient  # the app's client, for rules that ask a service (the captcha)


class SpamRule(Protocol):
    name: ClassVar[str]
    reasons: ClassVar[type[Reason]]

    @classmethod
    def from_settings(cls, setup: RuleSetup) -> Self | None:
        """The rule for these settings, or None when it is off."""
        ...

    async def check(self, submission: Screened, visit: Visit) -> Sequence[Reason]:
        """The reasons this submission looks automated; empty when it does not."""
        ...


class SpamRules:
    """The rules, in the order they run (the order of docs/spam.md's "Every spam reason")."""

    def __init__(self, rules: Iterable[type[SpamRule]] = ()) -> None:
        self._rules: list[type[SpamRule]] = []
        for rule in rules:
            self.register(rule)

    def register(self, rule: type[SpamRule]) -> None:
        """Run ``rule`` after those registered before it. Names and reasons must be new:
        a stored reason has to say which rule gave it."""
        if any(known.name == rule.name for known in self._rules):
            raise ValueError(f"a spam rule named {rule.name!r} is already registered")
        taken = {reason.value for reason in self.reasons()}
        if clash := sorted(taken.intersection(reason.value for reason in rule.reasons)):
            raise ValueError(f"{rule.name}: reasons already given by another rule: {clash}")
        self._rules.append(rule)

    def __iter__(self) -> Iterator[type[SpamRule]]:
        return iter(self._rules)

    def reasons(self) -> list[Reason]:
        """Every reason any rule can give, in order."""
        return [reason for rule in self._rules for reason in rule.reasons]

    def build(self, setup: RuleSetup) -> list[SpamRule]:
        """The rules that are on with these settings, in order."""
        return [r for rule in self._rules if (r := rule.from_settings(setup)) is not None]
