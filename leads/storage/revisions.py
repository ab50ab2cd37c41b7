"""Which migrations a database still needs, answered without loading Alembic.

Alembic's script machinery (and the DDL support for every dialect it brings) costs a
server a third of a second and ten megabytes, to learn what one ``SELECT`` and the names
in ``alembic/versions`` already say. So the graph is read here from each migration's
``revision`` and ``down_revision`` lines, and the database's ``alembic_version`` is read
with SQLAlchemy. :class:`RevisionGraph` answers only when it is sure: a migration file it
cannot read, or a database at a revision it does not know, and the caller asks Alembic.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, inspect, text

VERSION_TABLE = "alembic_version"  # Alembic's default; alembic/env.py keeps it
_ASSIGNED = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)


class NotSure(Exception):
    """The graph cannot answer this one: ask Alembic."""


@dataclass(frozen=True)
class RevisionGraph:
    """Each revision with the ones it follows (none for the first)."""

    parents: dict[str, tuple[str, ...]]

    @classmethod
    def read(cls, versions: Path) -> RevisionGraph:
        """The graph of the migrations in ``versions``; :class:`NotSure` when a file's
        ``revision`` or ``down_revision`` is not a plain literal on one line."""
        parents: dict[str, tuple[str, ...]] = {}
        for path in sorted(versions.glob("*.py")):
            source = path.read_text("utf-8")
            found = {m.group(1): m.group(2) for m in _ASSIGNED.finditer(source)}
            try:
                revision = ast.literal_eval(found["revision"])
                down = ast.literal_eval(found["down_revision"])
            except (KeyError, ValueError, SyntaxError) as exc:
                raise NotSure(f"{path.name}: no literal revision and down_revision") from exc
            downs = (down,) if isinstance(down, str) else tuple(down or ())
            if not isinstance(revision, str) or revision in parents:
                raise NotSure(f"{path.name}: revision {revision!r}")
            parents[revision] = downs
        if not parents or any(d not in parents for downs in parents.values() for d in downs):
            raise NotSure("the migrations do not form one graph")
        return cls(parents)

    def heads(self) -> frozenset[str]:
        followed = {d for downs in self.parents.values() for d in downs}
        return frozenset(self.parents.keys() - followed)

    def pending(self, current: Iterable[str]) -> list[str]:
        """The revisions a database at ``current`` has still to apply, newest first."""
        current = set(current)
        if unknown := current - self.parents.keys():
            raise NotSure(f"the database is at revision(s) {sorted(unknown)} unknown here")
        wanted = self._with_ancestors(self.heads()) - self._with_ancestors(current)
        return [r for r in reversed(self._in_order()) if r in wanted]

    def _in_order(self) -> list[str]:
        """Every revision after the ones it follows."""
        done: list[str] = []
        placed: set[str] = set()
        while len(done) < len(self.parents):
            ready = [
                r
                for r, downs in self.parents.items()
                if r not in placed and placed.issuperset(downs)
            ]
            if not ready:
                raise NotSure("the migrations go round in a circle")
            done.extend(ready)
            placed.update(ready)
        return done

    def _with_ancestors(self, revisions: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(revisions)
        while todo:
            revision = todo.pop()
            if revision not in seen:
                seen.add(revision)
                todo.extend(self.parents[revision])
        return seen


def current_revisions(connection: Connection) -> tuple[str, ...]:
    """What ``alembic_version`` holds (nothing on a database Alembic never touched)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return ()
    rows = connection.execute(text("SELECT version_num FROM alembic_version"))
    return tuple(str(version) for (version,) in rows)
