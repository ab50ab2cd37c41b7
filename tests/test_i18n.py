"""The visitor's language: catalogs complete and fresh, the language chosen per form, per
clinic and (when allowed) by the browser, the words each language's visitor is shown and
what is stored of them, problems worded without their codes changing, and an autoreply
in Spanish at a real SMTP server."""

from __future__ import annotations

import asyncio
import gettext
import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po

from leads.core.forms import load_forms
from leads.core.vocabulary import Language
from leads.core.wording import consent_hash
from leads.errors import ConfigurationError
from leads.i18n.catalogs import LOCALE_DIR, catalog_path
from leads.i18n.choice import accepted_languages
from tests.mail import mail_server, smtp_settings

ROOT = Path(__file__).parent.parent
TRANSLATED = [language for language in Language if language is not Language.EN]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")
FORM = "/f/dry-needling"

FORMS_TOML = """
[forms.back-pain]
title = "Help with back pain"
language = "en"
interests = ["Sciatica", "Stiffness"]
consent = "You may phone or email me about this."

[forms.back-pain.translations.es]
title = "Ayuda con el dolor de espalda"
interests = ["Ciática", "Rigidez"]
consent = "Pueden llamarme o escribirme sobre esto."
autoreply = "Gracias, le llamaremos pronto."

[forms.rueckenschmerz]
title = "Hilfe bei Rückenschmerzen"
language = "de"
"""


def messages(path: Path) -> dict[Any, Any]:
    with path.open("rb") as source:
        catalog = read_po(source)
    return {m.id: m for m in catalog if m.id}


def placeholders(text: Any) -> list[set[str]]:
    parts = text if isinstance(text, tuple | list) else (text,)
    return [set(PLACEHOLDER.findall(part)) for part in parts]


# The catalogs


def test_the_template_holds_every_marked_string_of_the_sources(tmp_path: Path) -> None:
    """Extracted again, exactly as docs/languages.md says: a new or changed string without
    a new leads.pot fails here."""
    fresh = tmp_path / "leads.pot"
    pybabel = Path(sys.executable).parent / "pybabel"
    done = subprocess.run(
        [pybabel, "extract", "-F", "babel.cfg", "--no-location", "--sort-output", "-o", fresh, "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(map(str, messages(fresh))) == sorted(map(str, messages(LOCALE_DIR / "leads.pot")))


def catalog_problems(catalog_file: Path, template_file: Path) -> list[str]:
    """What is wrong with a catalog against the template: strings missing or extra, left
    untranslated or fuzzy, placeholders lost or added."""
    template, catalog = messages(template_file), messages(catalog_file)
    problems = [f"missing {m!r}" for m in template if m not in catalog]
    problems += [f"not in the template {m!r}" for m in catalog if m not in template]
    for msgid, message in catalog.items():
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if "fuzzy" in message.flags or not all(strings):
            problems.append(f"untranslated {msgid!r}")
            continue
        wanted = placeholders(msgid)
        if isinstance(msgid, tuple):  # each plural form: the plural's, the count optional
            found = placeholders(message.string)
            if not all(wanted[1] - {"%(count)s"} <= f <= wanted[1] for f in found):
                problems.append(f"placeholders {msgid!r}")
        elif placeholders(message.string) != wanted:
            problems.append(f"placeholders {msgid!r}")
    return problems


@pytest.mark.parametrize("language", TRANSLATED)
def test_each_catalog_translates_every_string_with_its_placeholders(language: Language) -> None:
    assert catalog_problems(catalog_path(language), LOCALE_DIR / "leads.pot") == []


def test_the_completeness_check_notices_what_a_catalog_lacks(tmp_path: Path) -> None:
    text = catalog_path(Language.ES).read_text(encoding="utf-8")
    broken = text.replace(
        'msgstr "Opcional. Hasta %(limit)s caracteres."', 'msgstr "Opcional. Hasta caracteres."'
    ).replace('msgstr "Díganos su nombre."', 'msgstr ""')
    assert broken != text
    doctored = tmp_path / "leads.po"
    doctored.write_text(broken, encoding="utf-8")
    assert catalog_problems(doctored, LOCALE_DIR / "leads.pot") == [
        "placeholders 'Optional. Up to %(limit)s characters.'",
        "untranslated 'Please tell us your name.'",
    ]


@pytest.mark.slow
def test_the_wheel_carries_each_catalog_compiled(tmp_path: Path) -> None:
    """`pip install .` builds a wheel; hatch_build.py compiles each .po into it, and the
    compiled catalog says what the .po says."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("leads-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for language in TRANSLATED:
            name = f"leads/locale/{language.value}/LC_MESSAGES/leads.mo"
            compiled = gettext.GNUTranslations(io.BytesIO(archive.read(name)))
            with catalog_path(language).open("rb") as source:
                catalog = read_po(source, locale=language.value)
            said = {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy}
            assert said
            assert all(compiled.gettext(k) == v for k, v in said.items() if isinstance(k, str))


# Choosing the language


def test_accept_language_is_read_by_quality_and_by_primary_subtag() -> None:
    assert accepted_languages("es-MX,es;q=0.9") == (Language.ES,)
    assert accepted_languages("fr-CH, fr;q=0.9, de;q=0.7, es;q=0.8") == (Language.ES, Language.DE)
    assert accepted_languages("de;q=0, en") == (Language.EN,)
    assert accepted_languages("*, ja") == ()
    assert accepted_languages("es;q=abc, x-klingon, ;;") == ()
    assert accepted_languages(None) == ()


def lang_of(html: str) -> str:
    found = re.search(r'<html lang="([a-z]+)">', html)
    assert found is not None
    return found.group(1)


async def test_negotiation_picks_spanish_for_a_mexican_browser(make_client) -> None:
    client = await make_client(negotiate_language=True)
    response = await client.get(FORM, headers={"Accept-Language": "es-MX,es;q=0.9"})
    assert response.status_code == 200
    assert lang_of(response.text) == "es"
    assert "<title>Más información sobre la punción seca</title>" in response.text
    assert "Enviar mi solicitud" in response.text
    assert "Accept-Language" in response.headers["Vary"]
    assert "Sec-Fetch-Dest" in response.headers["Vary"]


async def test_an_unshipped_language_falls_back_to_the_clinics(make_client) -> None:
    client = await make_client(negotiate_language=True, language="de")
    response = await client.get(FORM, headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert lang_of(response.text) == "de"
    assert "Anfrage senden" in response.text
    assert "Accept-Language" in response.headers["Vary"]
    thanks = await client.get(f"{FORM}/thanks", headers={"Accept-Language": "ja"})
    assert lang_of(thanks.text) == "de"
    assert "Vielen Dank, Ihre Anfrage ist angekommen" in thanks.text
    assert "Accept-Language" in thanks.headers["Vary"]


async def test_without_negotiation_the_browser_does_not_choose(make_client) -> None:
    client = await make_client(language="es")
    response = await client.get(FORM, headers={"Accept-Language": "de"})
    assert lang_of(response.text) == "es"
    assert "Accept-Language" not in response.headers["Vary"]
    english = await (await make_client()).get(FORM, headers={"Accept-Language": "es"})
    assert lang_of(english.text) == "en"
    assert "Send my request" in english.text


async def test_a_forms_language_and_translations(make_client, tmp_path: Path) -> None:
    forms = tmp_path / "forms.toml"
    forms.write_text(FORMS_TOML, encoding="utf-8")
    client = await make_client(forms_file=forms, negotiate_language=True)
    german = await client.get("/f/rueckenschmerz", headers={"Accept-Language": "fr"})
    assert lang_of(german.text) == "de"
    assert "Hilfe bei Rückenschmerzen" in german.text
    # The default consent, in the form's language from the catalog.
    assert "Ich bin einverstanden, dass die Praxis diese Angaben speichert" in german.text

    spanish = await client.get("/f/back-pain", headers={"Accept-Language": "es"})
    assert "Ayuda con el dolor de espalda" in spanish.text
    assert "<option>Ciática</option>" in spanish.text
    assert "Pueden llamarme o escribirme sobre esto." in spanish.text
    # A translation without its own key shows the form's (German has none here).
    assert (
        "Help with back pain"
        in (await client.get("/f/back-pain", headers={"Accept-Language": "de"})).text
    )


async def test_interests_are_checked_and_kept_in_the_language_shown(
    make_client, tmp_path: Path, query, lead
) -> None:
    forms = tmp_path / "forms.toml"
    forms.write_text(FORMS_TOML, encoding="utf-8")
    client = await make_client(forms_file=forms, negotiate_language=True)
    spanish = {"Accept-Language": "es-ES"}
    refused = await client.post(
        "/api/leads", json=lead(form="back-pain", interest="Sciatica"), headers=spanish
    )
    assert refused.status_code == 422
    assert [e["code"] for e in refused.json()["errors"]] == ["invalid_choice"]
    assert refused.json()["errors"][0]["message"] == "Elija una de las opciones de la lista."

    body = lead(form="back-pain", interest="Ciática")
    taken = await client.post("/api/leads", json=body, headers=spanish)
    assert taken.status_code == 201, taken.text
    [row] = await query(
        "SELECT interest, language, consent_text, consent_version FROM leads WHERE email = :e",
        e=body["email"],
    )
    assert row["interest"] == "Ciática"
    assert row["language"] == "es"
    assert row["consent_text"] == "Pueden llamarme o escribirme sobre esto."
    assert row["consent_version"] == consent_hash("Pueden llamarme o escribirme sobre esto.")
    [wording] = await query(
        "SELECT text FROM consent_versions WHERE version = :version",
        version=row["consent_version"],
    )
    assert wording["text"] == "Pueden llamarme o escribirme sobre esto."


def test_a_forms_file_names_only_shipped_languages(tmp_path: Path) -> None:
    forms = tmp_path / "forms.toml"
    for text, says in (
        ('[forms.a]\ntitle = "A"\nlanguage = "fr"\n', "form 'a': language is one of en, es, de"),
        (
            '[forms.a]\ntitle = "A"\n[forms.a.translations.it]\ntitle = "Una"\n',
            "translations.it: language is one of en, es, de",
        ),
        (
            '[forms.a]\ntitle = "A"\n[forms.a.translations.es]\nsubtitle = "x"\n',
            "translations.es: unknown keys ['subtitle']",
        ),
        ('[forms.a]\ntitle = "A"\n[forms.a.translations.es]\ntitle = 3\n', "title must be text"),
    ):
        forms.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigurationError, match=re.escape(says)):
            load_forms(forms)


# Problems


async def test_problems_keep_their_codes_and_types_in_spanish(make_client, lead) -> None:
    client = await make_client(negotiate_language=True)
    body = lead(name="", email="not-an-address", consent=False, colour="blue")
    english = await client.post("/api/leads", json=body)
    spanish = await client.post("/api/leads", json=body, headers={"Accept-Language": "es"})
    assert english.status_code == spanish.status_code == 422
    assert spanish.headers["content-type"] == english.headers["content-type"]
    en, es = english.json(), spanish.json()
    for key in ("type", "code", "status"):
        assert es[key] == en[key]
    assert [(e["field"], e["code"]) for e in es["errors"]] == [
        (e["field"], e["code"]) for e in en["errors"]
    ]
    assert en["errors"][0]["message"] == "This field is not part of the form."
    assert es["errors"][0]["message"] == "Este campo no forma parte del formulario."
    assert es["title"] == "Revise algunos campos"
    assert "Díganos su nombre." in {e["message"] for e in es["errors"]}


async def test_the_hosted_forms_errors_are_beside_their_fields_in_german(make_client) -> None:
    client = await make_client(language="de")
    response = await client.post(
        FORM, data={"form": "dry-needling", "name": "", "message": "x" * 2001}
    )
    assert response.status_code == 422
    text = " ".join(response.text.split())
    assert '<p class="field-error" id="name-error"><span class="visually-hidden">Fehler: ' in text
    assert "Bitte nennen Sie uns Ihren Namen." in text
    assert "Bitte verwenden Sie höchstens 2000 Zeichen." in text
    assert "<title>Fehler: Mehr über Dry Needling erfahren</title>" in text
    assert "Bitte prüfen Sie vor dem Senden diese 4 Angaben" in text


async def test_a_missing_form_is_told_in_the_clinics_language(make_client) -> None:
    client = await make_client(language="es")
    page = await client.get("/f/no-such-form", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert lang_of(page.text) == "es"
    assert "No hay ningún formulario en esta dirección" in page.text
    problem = await client.get("/f/no-such-form")
    assert problem.json()["code"] == "form_not_found"
    assert problem.json()["title"] == "No hay ningún formulario en esta dirección"


# Emails


async def test_the_autoreply_is_in_spanish_and_the_clinic_email_in_the_clinics_language(
    make_client,
) -> None:
    with mail_server() as smtp:
        client = await make_client(
            **smtp_settings(smtp, autoreply=True),
            negotiate_language=True,
            clinic_name="Northside Physio",
            clinic_phone="(202) 555-0123",
        )
        response = await client.post(
            FORM,
            data={
                "form": "dry-needling",
                "name": "Lucía Pérez",
                "email": "lucia@example.com",
                "interest": "Dolor de cuello o de hombro",
                "consent": "true",
            },
            headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"},
        )
        assert response.status_code == 303, response.text
        mails = await asyncio.to_thread(smtp.wait_for, 2)
    (reply,) = [m for m in mails if m.recipients == ["lucia@example.com"]]
    (clinic,) = [m for m in mails if m is not reply]
    assert reply.message["Subject"] == (
        "Recibimos su solicitud: Más información sobre la punción seca"
    )
    text = reply.part("plain").replace("\r\n", "\n")
    assert text.startswith("Hola, Lucía:\n\nGracias por escribirnos.")
    assert "llame a Northside Physio al (202) 555-0123." in text
    assert text.endswith("Northside Physio\nTeléfono: (202) 555-0123\n")
    assert '<html lang="es">' in reply.part("html")

    assert clinic.message["Subject"] == "New enquiry: Learn more about dry needling from Lucía"
    staff = clinic.part("plain")
    assert "Wrote in: Spanish" in staff
    assert "Interested in: Dolor de cuello o de hombro" in staff


async def test_the_clinic_email_is_in_german_with_a_german_date(make_client, lead) -> None:
    with mail_server() as smtp:
        client = await make_client(**smtp_settings(smtp), language="de", timezone="Europe/Berlin")
        response = await client.post("/api/leads", json=lead(name="Ada Lovelace"))
        assert response.status_code == 201, response.text
        (mail,) = await asyncio.to_thread(smtp.wait_for, 1)
    assert mail.message["Subject"] == "Neue Anfrage: Mehr über Dry Needling erfahren von Ada"
    text = mail.part("plain").replace("\r\n", "\n")
    assert "Über „Mehr über Dry Needling erfahren“ ist eine neue Anfrage eingegangen." in text
    assert re.search(r"^Eingegangen: \d{2}\.\d{2}\.\d{4}, \d{2}:\d{2} CES?T$", text, re.M), text
    assert "Anfrage öffnen: http" in text
    assert "Geschrieben auf" not in text  # the visitor's language is the staff's
