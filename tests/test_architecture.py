"""The shape of the tree: which parts of leads may import which."""

from __future__ import annotations

import ast
from pathlib import Path

import leads

ROOT = Path(leads.__file__).parent
PARTS = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists())


def imported_parts(part: str) -> set[str]:
    """The other subpackages of leads that modules of ``part`` import."""
    found: set[str] = set()
    for path in (ROOT / part).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                pieces = name.split(".")
                if pieces[0] == "leads" and len(pieces) > 1 and pieces[1] in PARTS:
                    found.add(pieces[1])
    return found - {part}


def test_no_part_of_leads_imports_one_that_imports_it_back() -> None:
    graph = {part: imported_parts(part) for part in PARTS}

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
            for nxt in graph[start]
        )

    cycles = [part for part in PARTS if reaches(part, part)]
    assert cycles == [], {part: sorted(graph[part]) for part in cycles}


def test_the_shared_vocabulary_depends_on_nothing_else() -> None:
    assert imported_parts("core") == set()
    assert {"intake", "notify", "staff"}.isdisjoint(imported_parts("storage"))
    assert "intake" not in imported_parts("notify")
    assert "intake" not in imported_parts("staff")


def test_no_test_module_imports_another() -> None:
    """Shared helpers live in conftest.py, support.py, servers.py, mail.py, clock.py and
    pgcluster.py; a test module importing another would run its tests twice or tie them."""
    here = Path(__file__).parent
    offenders = []
    for path in sorted(here.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests.test_"):
                offenders.append(f"{path.name} imports {node.module}")
    assert offenders == []
