"""Properties of the edge: whatever a visitor sends, parse_submission either returns clean,
normalised values or raises InvalidSubmission naming the fields, and nothing else."""

from __future__ import annotations

import unicodedata
from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from leads.core.forms import load_forms
from leads.core.vocabulary import ATTRIBUTION
from leads.errors import InvalidSubmission
from leads.intake.fields import (
    BIDI_CONTROLS,
    LINE_BREAKS,
    MAX_PHONE_INPUT,
    TRUE_WORDS,
    Invalid,
    clean_email,
    clean_phone,
    clean_text,
    is_checked,
)
from leads.intake.submission import FIELDS, MAX_NAME, parse_submission

# Modest and repeatable: the same examples on every run, no example database.
settings.register_profile(
    "leads-validation",
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROPERTY = settings.get_profile("leads-validation")

FORMS = load_forms(None)
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
SINGLE_LINE = ("name", "email", "phone", "preferred_contact", "interest", "form", *ATTRIBUTION)
# Control characters, and U+2028 / U+2029, which start a new line like CR and LF do.
CONTROLS = st.characters(categories=["Cc", "Cs", "Zl", "Zp"])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
plausible = {
    "name": st.text(max_size=120),
    "email": st.emails() | st.text(max_size=40),
    "phone": st.sampled_from(["+12025550143", "(202) 555-0143", "020 7946 0018", "12"])
    | st.text(alphabet="+0123456789 ()-", max_size=25),
    "preferred_contact": st.sampled_from(["email", "phone", "text", "fax", ""]),
    "interest": st.sampled_from(FORMS.get("dry-needling").interests) | st.text(max_size=10),
    "consent": st.sampled_from([True, False, "on", "yes", "no", None, 1]),
    "form": st.sampled_from(["dry-needling", "nope"]),
}


@st.composite
def raw_submissions(draw: st.DrawFn) -> dict[str, Any]:
    """JSON-like objects: mostly our fields with plausible or arbitrary values, some others."""
    raw: dict[str, Any] = {}
    for field in draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=9)):
        strategy = plausible.get(field, st.text(max_size=30))
        raw[field] = draw(strategy | json_values)
    raw.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    return raw


def attempt(clean: Any, *args: Any, **kwargs: Any) -> tuple[str | None, str | None]:
    """(the clean value, None), or (None, the code of the Invalid it raised)."""
    try:
        return clean(*args, **kwargs), None
    except Invalid as exc:
        return None, exc.code


def valid_body(**fields: Any) -> dict[str, Any]:
    return {"name": "Ann Smith", "email": "ann@example.com", "consent": True, **fields}


def error_codes(raw: dict[str, Any], region: str = "US") -> dict[str, str]:
    with pytest.raises(InvalidSubmission) as caught:
        parse_submission(raw, forms=FORMS, default_region=region)
    return {field: error.code for field, error in caught.value.by_field().items()}


@PROPERTY
@given(raw=raw_submissions(), region=st.sampled_from(["US", "GB", "DE", "AU", "IN"]))
def test_any_object_is_parsed_or_refused_by_field(raw: dict[str, Any], region: str) -> None:
    try:
        submission = parse_submission(raw, forms=FORMS, default_region=region)
    except InvalidSubmission as exc:
        named = {e.field for e in exc.errors}
        assert named
        assert named <= {*FIELDS, *(str(k)[:100] for k in raw)}
        return
    assert is_checked(raw["consent"])
    assert 1 <= len(submission.name) <= MAX_NAME
    assert submission.email is not None or submission.phone is not None
    if submission.email is not None:
        assert clean_email(submission.email) == submission.email
    if submission.phone is not None:
        assert phonenumbers.is_valid_number(phonenumbers.parse(submission.phone))
        assert clean_phone(submission.phone, region="US") == submission.phone
    assert submission.honeypot == bool(str(raw.get("website") or "").strip())


@PROPERTY
@given(
    field=st.sampled_from(SINGLE_LINE),
    control=CONTROLS,
    position=st.integers(min_value=0, max_value=12),
)
@example(field="name", control="\n", position=3)
@example(field="email", control="\t", position=0)
@example(field="phone", control="\x85", position=4)
@example(field="name", control="\u2028", position=3)  # "Ann\u2028Email: ..." forges a line
@example(field="name", control="\u2029", position=9)
@example(field="utm_source", control="\x85", position=1)
def test_a_control_character_in_a_single_line_field(
    field: str, control: str, position: int
) -> None:
    good = valid_body(
        phone="+12025550143", preferred_contact="email", interest="Headaches", utm_source="ad"
    )
    value = str(good.get(field, "https://clinic.example/page"))
    good[field] = value[:position] + control + value[position:]
    assert error_codes(good)[field] == "control_characters"


@PROPERTY
@given(
    control=CONTROLS.filter(lambda c: c not in "\n\t\r" + LINE_BREAKS), position=st.integers(0, 12)
)
@example(control="\x00", position=0)
@example(control="\x7f", position=12)
def test_a_control_character_in_the_message(control: str, position: int) -> None:
    text = "Neck pain since May"
    assert error_codes(valid_body(message=text[:position] + control + text[position:])) == {
        "message": "control_characters"
    }


def test_message_keeps_its_lines_and_tabs() -> None:
    parsed = parse_submission(valid_body(message=" a\r\n\tb\rc "), forms=FORMS, default_region="US")
    assert parsed.message == "a\n\tb\nc"


def test_other_line_breaks_in_the_message_become_new_lines() -> None:
    text = "Neck\u2028pain\u2029since\x85May\r\n\u2028ok"
    parsed = parse_submission(valid_body(message=text), forms=FORMS, default_region="US")
    assert parsed.message == "Neck\npain\nsince\nMay\n\nok"


@pytest.mark.parametrize("control", sorted(BIDI_CONTROLS))
@pytest.mark.parametrize("field", ["name", "email", "phone", "utm_source", "page_url"])
def test_bidirectional_controls_are_refused_on_one_line(field: str, control: str) -> None:
    body = valid_body(phone="+12025550143", utm_source="ad", page_url="https://c.example/")
    body[field] = body[field][:3] + control + body[field][3:]
    assert error_codes(body) == {field: "bidi_controls"}


def test_bidirectional_controls_may_stay_in_the_message() -> None:
    text = "\u05e9\u05dc\u05d5\u05dd \u2067abc\u2069 \u202bquoted\u202c"
    parsed = parse_submission(valid_body(message=text), forms=FORMS, default_region="US")
    assert parsed.message == text


@pytest.mark.parametrize(
    "name",
    [
        "\u200b",  # zero-width space
        "\u200d\u200c\u200d",  # joiners alone
        "\ufeff\u2060",  # byte-order mark, word joiner
        " \u200b \u00ad ",  # spaces and a soft hyphen
        "\u0301\u0308",  # combining marks with nothing to combine with
        "\u200e\u200f\u061c",  # direction marks alone
        "\u3164\u3164",  # Hangul fillers
        "\u2800",  # blank braille pattern
        "\U000e0041\U000e0042",  # tag characters
    ],
)
def test_a_name_with_nothing_visible_is_required(name: str) -> None:
    assert error_codes(valid_body(name=name)) == {"name": "required"}


@pytest.mark.parametrize(
    "name",
    [
        "Ame\u0301lie O\u2019Brien",  # combining accent (made NFC), curly apostrophe
        "Nguy\u1ec5n Th\u1ecb Minh",
        "\u738b\u5c0f\u660e",  # Chinese
        "\u0645\u062d\u0645\u062f \u0639\u0644\u064a",  # Arabic
        "\u05d3\u05d5\u05d3 \u05db\u05d4\u05df\u200f",  # Hebrew, with a right-to-left mark
        "\u0639\u0644\u06cc\u200c\u0631\u0636\u0627",  # Persian, with a ZWNJ inside
        "\u0dc1\u0dca\u200d\u0dbb\u0dd3 \u0db4\u0dd9\u0dbb\u0dda\u0dbb\u0dcf",  # Sinhala ZWJ
        "\u0915\u094d\u200d\u0937\u093f\u0924\u093f",  # Devanagari, with a ZWJ
        "J.\u00a0R. R. Tolkien",
    ],
)
def test_real_names_pass_as_typed(name: str) -> None:
    parsed = parse_submission(valid_body(name=name), forms=FORMS, default_region="US")
    assert parsed.name == unicodedata.normalize("NFC", name)


printable = st.text(
    st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"]).filter(
        lambda c: c not in BIDI_CONTROLS
    ),
    min_size=0,
    max_size=MAX_NAME + 10,
)
# What draws nothing on its own: separators, controls and format characters, unassigned or
# private-use ones, combining marks, Hangul fillers and the blank braille pattern.
BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def draws_something(text: str) -> bool:
    return any(unicodedata.category(c)[0] not in "ZCM" and c not in BLANK for c in text)


@PROPERTY
@given(name=printable | st.builds(lambda s: f"  {s}\u3000", printable))
@example(name="  Ame\u0301lie  ")
@example(name="\u0958" * 100)  # NFC makes each of these two characters: too long
def test_names_are_trimmed_nfc_and_1_to_100_characters(name: str) -> None:
    expected = unicodedata.normalize("NFC", name.strip())
    try:
        parsed = parse_submission(valid_body(name=name), forms=FORMS, default_region="US")
    except InvalidSubmission as exc:
        code = exc.by_field()["name"].code
        if code == "too_long":
            assert len(expected) > MAX_NAME
        else:
            assert code == "required", (code, expected)
            assert not draws_something(expected)
        return
    assert draws_something(parsed.name)
    assert parsed.name == expected
    assert 1 <= len(parsed.name) <= MAX_NAME
    assert unicodedata.is_normalized("NFC", parsed.name)


def test_example_numbers_of_every_region_read_back_as_e164() -> None:
    """Exhaustive rather than sampled: every region, fixed line and mobile."""
    wrong = []
    checked = 0
    for region in REGIONS:
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
            international = phonenumbers.format_number(
                number, phonenumbers.PhoneNumberFormat.INTERNATIONAL
            )
            checked += 1
            for written, read_in in ((national, region), (international, "US")):
                try:
                    got = clean_phone(written, region=read_in)
                except Invalid as exc:
                    got = exc.code
                if got != e164:
                    wrong.append((region, written, got, e164))
    assert checked > 400
    assert wrong == []


@PROPERTY
@given(value=st.text(max_size=MAX_PHONE_INPUT + 5), region=st.sampled_from(REGIONS))
def test_any_phone_text_is_e164_or_invalid(value: str, region: str) -> None:
    phone, code = attempt(clean_phone, value, region=region)
    if phone is None:
        assert code in {"invalid_phone", "control_characters", "bidi_controls", "too_long"}
        return
    assert phone.startswith("+")
    assert phone[1:].isdigit()
    assert phonenumbers.is_valid_number(phonenumbers.parse(phone))


@PROPERTY
@given(address=st.emails() | st.text(max_size=40), padding=st.sampled_from(["", " ", "\u00a0 "]))
@example(address="Ann@EXAMPLE.com", padding=" ")
@example(address="ann@xn--mnchen-3ya.de", padding="")
@example(address="ann@MÜNCHEN.de", padding="")
@example(address='"ann"@example.com', padding="")
def test_a_normalised_email_normalises_to_itself(address: str, padding: str) -> None:
    once, code = attempt(clean_email, padding + address + padding)
    if once is None:
        assert code in {"invalid_email", "control_characters", "bidi_controls", "too_long"}
        return
    assert clean_email(once) == once
    assert once == clean_email(address)
    assert once.strip() == once


@PROPERTY
@given(
    word=st.sampled_from(sorted(TRUE_WORDS)),
    upper=st.lists(st.booleans(), min_size=5, max_size=5),
    pad=st.sampled_from(["", " ", "\t", " \n"]),
)
def test_documented_ticks_are_checked(word: str, upper: list[bool], pad: str) -> None:
    cased = "".join(c.upper() if up else c for c, up in zip(word, upper, strict=False))
    assert is_checked(pad + cased + pad)


@PROPERTY
@given(value=json_values | st.text(max_size=6))
@example(value=1)
@example(value="0")
@example(value="off")
@example(value="no")
@example(value="")
@example(value=["on"])
@example(value={"on": True})
@example(value="true\x00")
@example(value="\uff4f\uff4e")  # "on" in fullwidth letters
def test_only_documented_values_are_checked(value: Any) -> None:
    documented = value is True or (
        isinstance(value, str) and value.strip().lower() in {"true", "on", "yes", "1"}
    )
    assert is_checked(value) == documented


@PROPERTY
@given(value=st.text(max_size=60), multiline=st.booleans(), limit=st.integers(1, 50))
def test_clean_text_output_is_trimmed_plain_and_short(
    value: str, multiline: bool, limit: int
) -> None:
    cleaned, code = attempt(clean_text, value, max_length=limit, multiline=multiline)
    if cleaned is None:
        assert code in {"control_characters", "bidi_controls", "too_long"}
        return
    allowed = "\n\t" if multiline else ""
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in cleaned if c not in allowed)
    assert not any(c in LINE_BREAKS for c in cleaned)
    if not multiline:
        assert not any(c in BIDI_CONTROLS for c in cleaned)
    assert cleaned == cleaned.strip()
    assert len(cleaned) <= limit


# Through the front door: what a visitor sends over HTTP, and what is stored.


async def test_names_that_forge_lines_or_turn_the_subject_around_are_refused(client, query) -> None:
    async def codes(name: str) -> dict[str, str]:
        response = await client.post("/api/leads", json=valid_body(name=name))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        return {e["field"]: e["code"] for e in response.json()["errors"]}

    assert await codes("Ann\u2028Email: attacker@example.com") == {"name": "control_characters"}
    assert await codes("Ann\u2029Phone: 555") == {"name": "control_characters"}
    assert await codes("Ann\u202egnp.exe") == {"name": "bidi_controls"}
    assert await codes("\u200b\u200d\ufeff") == {"name": "required"}
    assert await query("SELECT id FROM leads") == []

    message = "Neck pain\u2028since May"
    sent = await client.post("/api/leads", json=valid_body(name="Zo\u00eb", message=message))
    assert sent.status_code == 201
    [row] = await query("SELECT name, message FROM leads")
    assert row == {"name": "Zo\u00eb", "message": "Neck pain\nsince May"}


async def test_the_hosted_form_explains_a_pasted_direction_control(client, query) -> None:
    form = {"name": "Ann\u202eSmith", "email": "ann@example.com", "consent": "on"}
    page = await client.post("/f/dry-needling", data=form)
    assert page.status_code == 422
    assert "change the direction of the text" in page.text
    assert await query("SELECT id FROM leads") == []
