"""Copy an old montydb (SQLite storage) database into :class:`electrodb.store.sqlite.SQLiteStore` files, once."""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path

from maggma.stores import MontyStore

from electrodb.store.sqlite import SQLiteStore

__all__ = ["MIGRATED_MARKER", "migrate_montydb", "montydb_collections"]

log = logging.getLogger(__name__)
MIGRATED_MARKER = ".migrated-from-montydb"


def montydb_collections(database_path: Path, database_name: str) -> list[str]:
    """Collections of an old montydb (SQLite storage) database not migrated yet (``[]`` if none)."""
    folder = database_path / database_name
    if not (database_path / "monty.storage.cfg").is_file() or (folder / MIGRATED_MARKER).exists():
        return []
    return sorted(p.stem for p in folder.glob("*.collection"))


def migrate_montydb(database_path: Path, database_name: str, keys: dict[str, str | list[str]]) -> dict[str, int]:
    """Copy the documents of an old montydb database into SQLite stores once; return counts per collection.

    The montydb files are left untouched; ``<database_path>/<database_name>/.migrated-from-montydb`` records
    the migration (delete the new ``*.sqlite3`` files and the marker to migrate again). Concurrent callers
    wait on a file lock, so only one process copies. ``keys`` maps collections to their upsert key (``jobs``:
    ``["uuid", "index"]``, as jobflow writes it); collections not in ``keys`` are skipped with a warning.
    """
    database_path = Path(database_path)
    folder = database_path / database_name
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with open(folder / ".migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        names = montydb_collections(database_path, database_name)
        if not names:
            return counts
        for name in names:
            if name not in keys:
                log.warning("montydb collection %r has no known key; not migrated", name)
                continue
            old = MontyStore(name, database_path=str(database_path), database_name=database_name)
            old.connect()
            key = keys[name]
            new = SQLiteStore(name, str(database_path), database_name, key=key if isinstance(key, str) else key[0])
            new.connect()
            batch: list[dict] = []
            counts[name] = 0
            for doc in old._collection.find({}):
                batch.append(doc)
                if len(batch) == 500:
                    new.update(batch, key=key)
                    counts[name] += len(batch)
                    batch = []
            if batch:
                new.update(batch, key=key)
                counts[name] += len(batch)
            new.close()
        (folder / MIGRATED_MARKER).write_text(
            "documents copied from montydb into SQLite stores (montydb files kept):\n"
            + "".join(f"{k}: {v}\n" for k, v in counts.items())
        )
    log.warning("migrated the montydb database at %s to SQLite stores: %s", folder, counts)
    return counts
