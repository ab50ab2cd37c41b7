"""The consent wordings of the loaded forms, checked against those on file at start-up.

A form with an explicit ``consent_version`` names its wording; if ``consent_versions``
already holds that version of that form with other words, the forms file changed the
wording without a new version, and the text on file would no longer be what the version
says. That is refused before the service starts, naming the form. Every language's wording
of every form is checked: a translation's ``consent_version`` names its own words. Versions
that are a hash of the wording cannot clash. The check reads only: on a database that is
not migrated yet (or not reachable) it is skipped, and the check runs again at the next
start; wordings are put on file when a submission first uses them
(:mod:`leads.intake.capture`).
"""

from __future__ import annotations

import logging

from sqlalchemy import inspect

from leads.core.forms import Form, FormCatalog
from leads.core.vocabulary import Language
from leads.core.wording import worded
from leads.errors import ConfigurationError, StorageUnavailable
from leads.i18n.catalogs import words_for
from leads.storage.consent_tables import ConsentVersion, stored_wordings
from leads.storage.database import Database, sqlite_path

log = logging.getLogger("leads")


def shown_wordings(forms: FormCatalog) -> list[Form]:
    """Every form as each shipped language shows it, each distinct wording once."""
    shown = {}
    for form in forms.forms.values():
        for language in Language:
            one = worded(form, language, words_for(language).gettext)
            shown[(one.slug, one.consent_version, one.consent)] = one
    return list(shown.values())


async def check_wordings(database: Database, forms: FormCatalog) -> None:
    """Raise :class:`ConfigurationError` for a form whose version is on file with other
    words; nothing to check (or no table yet) passes."""
    wordings = shown_wordings(forms)
    path = sqlite_path(str(database.engine.url))
    if path is not None and not path.exists():
        return  # nothing on file, and start-up creates no database
    try:
        async with database.reading() as session:
            connection = await session.connection()
            table = ConsentVersion.__tablename__
            if not await connection.run_sync(lambda c: inspect(c).has_table(table)):
                return
            on_file = await stored_wordings(
                session=session,
                keys=[(f.slug, f.consent_version) for f in wordings],
            )
    except StorageUnavailable:
        log.warning("consent wordings not checked: the database is unavailable")
        return
    for form in sorted(wordings, key=lambda f: (f.slug, f.language or "")):
        text = on_file.get((form.slug, form.consent_version))
        if text is not None and text != form.consent:
            raise ConfigurationError(
                f"LEADS_FORMS_FILE: form {form.slug!r}: consent_version "
                f"{form.consent_version!r} was shown with other wording; give the new wording "
                "a new consent_version"
            )
