"""The pages' templates in the visitor's language: Jinja2's i18n extension (``{% trans %}``,
``_()``) looking each sentence up in the ``words`` of the page being rendered.

A page that knows its visitor's language passes ``words`` (a
:class:`leads.i18n.catalogs.LanguageWords`); any other has the clinic's. Templates read it
as ``words.language`` too (``<html lang>``). Macros imported from another template must be
imported ``with context`` to see the page's words.
"""

from __future__ import annotations

import jinja2
from jinja2.runtime import Context

from leads.i18n.catalogs import LanguageWords

EXTENSIONS = ("jinja2.ext.i18n",)


@jinja2.pass_context
def _gettext(context: Context, message: str) -> str:
    words = context["words"]
    assert isinstance(words, LanguageWords)
    return words.gettext(message)


@jinja2.pass_context
def _ngettext(context: Context, singular: str, plural: str, count: int) -> str:
    words = context["words"]
    assert isinstance(words, LanguageWords)
    return words.translations.ngettext(singular, plural, count)


def install_words(env: jinja2.Environment, default: LanguageWords) -> None:
    """Make ``env``'s translations read the page's ``words``, ``default`` where none."""
    env.globals["words"] = default
    env.install_gettext_callables(  # type: ignore[attr-defined]
        _gettext, _ngettext, newstyle=True
    )
