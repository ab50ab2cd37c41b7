"""Spam and abuse defence without third-party trackers (issue 5).

Small building blocks, each usable on its own; the intake routes wire them together:

    tokens     time trap: a signed (issued-at, form) token in the hidden field of the form
    content    content rules: too many links, blocked terms, a name that is a URL
    ratelimit  submissions per client IP, email and phone (``limits``; memory or Redis)
    windows    the in-process moving windows behind ``memory://`` (cheap with many keys)
    tarpit     holds the answers to refused and flagged submissions, so floods slow down
    clientip   the visitor's address, from X-Forwarded-For only behind trusted proxies
    captcha    optional Turnstile, hCaptcha or reCAPTCHA v3 check through httpx

Checks that judge a submission return *reasons* (short stable strings such as
``"too_fast"``); a submission with reasons is stored flagged as spam and not announced.
Only the rate limiter refuses a request outright (429).
"""
