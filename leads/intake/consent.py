"""The consent wordings of the loaded forms, checked against those on file at start-up.

A form with an explicit ``consent_version`` names its wording; if ``consent_versions``
already holds that version of that form with other words, the forms file changed the
wording without a new version, and the text on file would no longer be what the version
says. That is refused before the service starts, naming the form. Versions that are a hash
of the wording cannot clash. The check reads only: on a database that is not migrated yet
(or not reachable) it is skipped, and the check runs again at the next start; wordings are
put on file when a submission first uses them (:mod:`leads.intake.capture`).
"""

from __future__ import annotations

import logging

from sqlalchemy import inspect

from leads.core.forms import FormCatalog
from leads.errors import ConfigurationError, StorageUnavailable
from leads.storage.consent_tables import ConsentVersion, stored_wordings
from leads.storage.database import Database, sqlite_path

log = logging.getLogger("leads")


async def check_wordings(database: Database, forms: FormCatalog) -> None:
    """Raise :class:`ConfigurationError` for a form whose version is on file with other
    words; nothing to check (or no table yet) passes."""
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
                keys=[(f.slug, f.consent_version) for f in forms.forms.values()],
            )
    except StorageUnavailable:
        log.warning("consent wordings not checked: the database is unavailable")
        return
    for slug, form in sorted(forms.forms.items()):
        text = on_file.get((slug, form.consent_version))
        if text is not None and text != form.consent:
            raise ConfigurationError(
                f"LEADS_FORMS_FILE: form {slug!r}: consent_version {form.consent_version!r} "
                "was shown with other wording; give the new wording a new consent_version"
            )
