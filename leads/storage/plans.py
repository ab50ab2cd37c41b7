"""Steering SQLite's query planner where, without statistics, it picks the wrong index.

SQLite plans without statistics (nothing runs ANALYZE), so it guesses from the shape of a
condition. A statement that names its rows (``id IN (...)``, ``lead_id = ?``) and also tests
``status = 'pending'`` can be planned on ``ix_outbox_route``, whose first column is the
status: the statement then walks every pending message, so its cost grows with the backlog,
where the primary key (or the lead's index) finds its rows directly. :func:`unindexed`
writes such a test as ``+outbox.status`` on SQLite: the same value, but a term no index may
serve (SQLite's documented way to disqualify one). PostgreSQL has statistics, but they lag
a table that fills and empties all day: with a backlog of emails it planned the claim's
UPDATE (``id IN (...) AND status = 'pending'``) on ``ix_outbox_route`` and filtered every
pending row (2,000-3,000 rows and 2-5 ms a claim), believing few were pending. There the
test is written ``(outbox.status || '')``: the same text, which no index serves either, so
the rows are found by primary key (or, on a new table not yet analysed, by reading the few
rows it has). Only text columns are written this way.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class unindexed(FunctionElement[Any]):  # reads as SQL: unindexed(column)
    """A column in a condition no index should serve; its value and type are the column's."""

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any] | Mapped[Any]) -> None:
        super().__init__(column)
        self.type = self.clauses.clauses[0].type


@compiles(unindexed)
def _as_is(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(unindexed, "sqlite")
def _no_index(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.clauses, **kw)


@compiles(unindexed, "postgresql")
def _no_index_postgresql(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return "(" + compiler.process(element.clauses, **kw) + " || '')"
