"""The time trap's signed form tokens."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leads.abuse.tokens import MAX_AGE_SECONDS, check_form_token, issue_form_token

SECRET = "test-secret-key-0123456789abcdef"
T0 = 1_750_000_000.0
slugs = st.text(min_size=1, max_size=50)


def check(
    token: str | None, *, form: str = "contact", now: float = T0 + 10, **kw: object
) -> str | None:
    options: dict[str, object] = {"secret": SECRET, "min_fill_seconds": 3.0, **kw}
    return check_form_token(token, form=form, now=now, **options)  # type: ignore[arg-type]


def test_a_token_is_short_and_url_safe() -> None:
    token = issue_form_token(SECRET, "a-form-with-a-long-slug-" * 2, T0)
    assert len(token) == 36
    assert token.isascii()
    assert all(c.isalnum() or c in "-_" for c in token)


def test_a_fresh_token_passes_after_the_minimum_fill_time() -> None:
    token = issue_form_token(SECRET, "contact", T0)
    assert check(token, now=T0 + 3.0) is None
    assert check(token, now=T0 + MAX_AGE_SECONDS) is None


@pytest.mark.parametrize(
    ("token", "reason"),
    [(None, "token_missing"), ("", "token_missing"), ("nope", "token_forged")],
)
def test_missing_or_garbage(token: str | None, reason: str) -> None:
    assert check(token) == reason


def test_too_fast_counts_milliseconds() -> None:
    token = issue_form_token(SECRET, "contact", T0)
    assert check(token, now=T0 + 2.999) == "too_fast"
    assert check(token, now=T0 - 60) == "too_fast"  # "issued" in the future: clocks apart


def test_expired() -> None:
    token = issue_form_token(SECRET, "contact", T0)
    assert check(token, now=T0 + MAX_AGE_SECONDS + 1) == "token_expired"
    assert check(token, now=T0 + 61, max_age_seconds=60) == "token_expired"


def test_another_form_or_another_secret() -> None:
    token = issue_form_token(SECRET, "contact", T0)
    assert check(token, form="newsletter") == "token_wrong_form"
    assert check(issue_form_token("another-secret", "contact", T0)) == "token_forged"


def test_plus_and_slash_are_not_accepted_for_dash_and_underscore() -> None:
    # Python's urlsafe decoder would read "+" as "-": the token must be rejected, not equal.
    token = issue_form_token(SECRET, "contact", T0)
    swapped = token.replace("-", "+").replace("_", "/")
    assert swapped != token  # this token has a "-" or a "_" to swap
    assert check(swapped) == "token_forged"
    assert check(token + "=") == "token_forged"
    assert check(" " + token) == "token_forged"


@given(form=slugs, issued=st.floats(min_value=0, max_value=1e11), wait=st.floats(3, 86399))
def test_round_trip(form: str, issued: float, wait: float) -> None:
    token = issue_form_token(SECRET, form, issued)
    assert check(token, form=form, now=issued + wait + 0.001) is None


@given(
    form=slugs,
    position=st.integers(min_value=0, max_value=35),
    replacement=st.characters(codec="utf-8"),
)
def test_any_single_character_changed_is_forged(form: str, position: int, replacement: str) -> None:
    token = issue_form_token(SECRET, form, T0)
    tampered = token[:position] + replacement + token[position + 1 :]
    if tampered != token:
        assert check(tampered, form=form) == "token_forged"


@given(form=slugs, position=st.integers(min_value=0, max_value=26), bit=st.integers(0, 7))
def test_any_byte_of_the_decoded_token_changed_is_forged(
    form: str, position: int, bit: int
) -> None:
    raw = bytearray(base64.urlsafe_b64decode(issue_form_token(SECRET, form, T0)))
    raw[position] ^= 1 << bit
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    assert check(tampered, form=form) == "token_forged"
