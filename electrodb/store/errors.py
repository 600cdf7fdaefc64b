"""Errors of a database that cannot be used as it is: one line naming what (the collection file, the folder, the
MongoDB URI with its password masked) and the fix, never a bare SQLite or pymongo traceback.

:class:`StoreUnavailableError` carries two messages: ``message`` for the command line (with the file's path) and
``public`` for the API (the collection's name only: no server path is ever served).
"""

from __future__ import annotations

import functools
import inspect
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from maggma.core import StoreError

__all__ = [
    "CHECK_HINT",
    "CollectionFileError",
    "StoreUnavailableError",
    "collection_file_error",
    "is_damage",
    "named_sqlite_errors",
]

#: What every collection-file message ends with: how to see the state of every file.
CHECK_HINT = "`electrodb db check` reports every collection file"
FileState = Literal["missing", "empty", "unreadable"]
F = TypeVar("F", bound=Callable[..., Any])


class StoreUnavailableError(StoreError):
    """The database, or one of its collections, cannot be read or written as it is.

    Attributes
    ----------
    message
        One line for the command line: what is wrong, where, and the fix.
    public
        The same without server paths, for the API.
    collection
        The collection concerned, or ``None`` for the whole database.
    """

    def __init__(self, message: str, public: str | None = None, collection: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.public = public or message
        self.collection = collection

    def __str__(self) -> str:
        return self.message


class CollectionFileError(StoreUnavailableError):
    """A collection file of the embedded database that is missing, empty (0 bytes) or unreadable (damaged, not
    a database); ``state`` says which."""

    def __init__(self, message: str, public: str, collection: str, state: FileState) -> None:
        super().__init__(message, public, collection)
        self.state = state


def collection_file_error(path: Path, state: FileState, detail: str = "") -> CollectionFileError:
    """The error of collection file ``path`` in ``state`` (``detail``: SQLite's own words, for ``unreadable``)."""
    name = path.name.removesuffix(".sqlite3")
    what = {
        "missing": f"is missing although its database folder {path.parent} exists",
        "empty": "is empty (0 bytes): it was truncated or never written",
        "unreadable": f"cannot be read ({detail or 'not an SQLite database'})",
    }[state]
    fix = "restore it from a backup"
    if state == "missing":
        fix += " (or run `electrodb build --rebuild` to rebuild without it)"
    message = f"collection file {path} {what}; {fix}; {CHECK_HINT}"
    public = f"collection {name!r} is {'unreadable' if state == 'unreadable' else state}; restore it from a backup"
    return CollectionFileError(message, public, name, state)


def is_damage(exc: sqlite3.Error) -> bool:
    """True when a SQLite error says the file itself is bad (not a lock, a busy writer or a wrong statement)."""
    text = str(exc).lower()
    if any(w in text for w in ("locked", "busy", "syntax error", "no such column", "interrupted")):
        return False
    if isinstance(exc, sqlite3.OperationalError):
        return any(w in text for w in ("no such table", "disk i/o", "unable to open", "malformed", "readonly"))
    return isinstance(exc, sqlite3.DatabaseError)


def named_sqlite_errors(method: F) -> F:
    """Decorate a method of a store with ``path``: a SQLite error that says the file is damaged becomes a
    :class:`CollectionFileError` naming the file (other errors pass unchanged)."""

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generator(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                yield from method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                if not is_damage(exc):
                    raise
                raise collection_file_error(Path(self.path), "unreadable", str(exc)) from exc

        return generator  # type: ignore[return-value]

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            if not is_damage(exc):
                raise
            raise collection_file_error(Path(self.path), "unreadable", str(exc)) from exc

    return wrapper  # type: ignore[return-value]
