"""`leads backup PATH`: an online, consistent copy of the SQLite database.

SQLite's backup API copies the database page by page inside one read transaction, so the
copy is the database as it was at one moment, and in WAL mode the service keeps writing
meanwhile (readers never block writers there). The copy is written to a private temporary
file beside PATH, checked with ``PRAGMA integrity_check``, flushed to disk, and only then
given its name: a reader of PATH sees either nothing or the whole backup, never half of
one. A crash or a full disk leaves at most the temporary file, never a damaged PATH.

The secret key file that SQLite installs generate (``leads.db.secret``, see leads/keys.py)
is not in the database, and forms signed with it are flagged when the key changes, so it is
copied too, as ``PATH.secret``: the name leads looks for when PATH is restored as the
database, under any name, with its key beside it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from leads.errors import StorageUnavailable, UsageError

PRIVATE = 0o600  # backups hold personal details: readable by their owner only


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    key_copy: Path | None  # where the generated key was copied, if there was one


def check_target(target: Path, *, force: bool) -> None:
    """Refuse what cannot end well before copying anything (again at the end, atomically)."""
    if target.is_dir():
        raise UsageError(
            f"{target} is a directory: name the backup file, such as {target}/leads.db"
        )
    if not target.parent.is_dir():
        raise UsageError(f"{target.parent} does not exist: create the directory first")
    if target.exists() and not force:
        raise UsageError(f"{target} exists: choose another name, or use --force to replace it")


def back_up_sqlite(
    source: Path, target: Path, *, key_file: Path | None, force: bool, timeout: float
) -> BackupResult:
    """Copy the database at ``source`` (and ``key_file``, if it exists) to ``target``.
    Blocking: run it in a thread. ``timeout`` is how long to wait for a lock."""
    check_target(target, force=force)
    scratch = _scratch_beside(target)
    try:
        _copy_database(source, scratch, timeout=timeout)
        _publish(scratch, target, force=force)
    finally:
        with contextlib.suppress(FileNotFoundError):
            scratch.unlink()
    key_copy = None
    if key_file is not None and key_file.exists():
        key_copy = target.with_name(target.name + ".secret")
        _copy_file(key_file, key_copy)
    _fsync(target.parent)  # so the new names survive a power cut, not only the contents
    return BackupResult(path=target, size=target.stat().st_size, key_copy=key_copy)


def _scratch_beside(target: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)  # mkstemp made it 0600; SQLite opens it again by name
    return Path(name)


def _copy_database(source: Path, scratch: Path, *, timeout: float) -> None:
    # Read-only, so that a mistyped LEADS_DATABASE_URL cannot create an empty database.
    origin = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True, timeout=timeout)
    try:
        copy = sqlite3.connect(scratch, timeout=timeout)
        try:
            origin.backup(copy)  # every page in one step: one consistent snapshot
            # One self-contained file: no -wal companion to forget beside the copy.
            copy.execute("PRAGMA journal_mode=DELETE")
            verdict = copy.execute("PRAGMA integrity_check").fetchone()
            if verdict != ("ok",):
                raise StorageUnavailable(f"the copy failed its integrity check: {verdict[0]}")
        finally:
            copy.close()
    except sqlite3.Error as exc:
        raise StorageUnavailable(f"could not back up {source}: {exc}") from exc
    finally:
        origin.close()
    _fsync(scratch)


def _publish(scratch: Path, target: Path, *, force: bool) -> None:
    os.chmod(scratch, PRIVATE)
    if force:
        os.replace(scratch, target)
        return
    try:
        os.link(scratch, target)  # fails if PATH appeared meanwhile: never overwritten
    except FileExistsError:
        raise UsageError(
            f"{target} exists: choose another name, or use --force to replace it"
        ) from None


def _copy_file(source: Path, target: Path) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(source.read_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
