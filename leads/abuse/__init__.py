"""Spam and abuse defence without third-party trackers.

Small building blocks, each usable on its own; ``leads.intake.defence`` wires them together:

    rules      the spam-rule protocol, ``Reason``, and the ``SpamRules`` registry
    defaults   the built-in rules, registered in the order they run:
    honeypot     a hidden field that people never see and bots fill in
    tokens       time trap: a signed (issued-at, form) token in the hidden field of the form
    captcha      optional Turnstile, hCaptcha or reCAPTCHA v3 check through httpx
    content      content rules: too many links, blocked terms, a name that is a URL
    ratelimit  submissions per client IP, email and phone (``limits``; memory or Redis)
    windows    the in-process moving windows behind ``memory://`` (cheap with many keys)
    tarpit     holds the answers to refused and flagged submissions, so floods slow down
    clock      the time all of these measure with, so that tests can move it
    clientip   the visitor's address, from X-Forwarded-For only behind trusted proxies

Rules that judge a submission return *reasons* (``StrEnum`` members such as
``"too_fast"``); a submission with reasons is stored flagged as spam and not announced.
Only the rate limiter refuses a request outright (429). This package imports nothing from
``leads.intake``: rules read a submission through ``rules.Screened``.
"""
