"""The built-in spam rules, registered in the order they run. That order is also the order
of the reasons in a flagged lead's ``spam_reason`` and in docs/spam.md, so moving a rule
changes what is stored.

A new rule is one module (a class as described in leads/abuse/rules.py) and one line here.
"""

from __future__ import annotations

from leads.abuse.captcha import Captcha
from leads.abuse.content import ContentRules
from leads.abuse.honeypot import Honeypot
from leads.abuse.rules import SpamRules
from leads.abuse.tokens import TimeTrap


def built_in_rules() -> SpamRules:
    """A new registry holding the built-in rules, in order."""
    rules = SpamRules()
    rules.register(Honeypot)
    rules.register(TimeTrap)
    rules.register(Captcha)
    rules.register(ContentRules)
    return rules
