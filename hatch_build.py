"""The wheel's build step: each ``leads/locale/<lang>/LC_MESSAGES/leads.po`` compiled to the
``leads.mo`` beside it in the wheel (with Babel, as ``pybabel compile`` does), so an
installed leads reads its catalogs ready-made. A checkout and an editable install need no
step: leads/i18n/catalogs.py compiles a ``.po`` in memory when no ``.mo`` is there."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CatalogsHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        self._compiled = tempfile.TemporaryDirectory()
        for po in sorted(Path(self.root, "leads", "locale").glob("*/LC_MESSAGES/leads.po")):
            language = po.parent.parent.name
            mo = Path(self._compiled.name) / f"{language}.mo"
            with po.open("rb") as source, mo.open("wb") as out:
                write_mo(out, read_po(source, locale=language, domain="leads"))
            build_data["force_include"][str(mo)] = f"leads/locale/{language}/LC_MESSAGES/leads.mo"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        compiled = getattr(self, "_compiled", None)
        if compiled is not None:
            compiled.cleanup()
