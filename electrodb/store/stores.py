"""All of ElectroDB's maggma stores, built from one settings object.

Embedded default: one SQLite file per collection under ``<data_dir>/db/<db_name>/`` (no server; indexed, safe
with several writer processes; :mod:`electrodb.store.sqlite`). An old montydb database found there is copied
into the SQLite files once, on first open (the montydb files are kept). With ``ELECTRODB_DB_URI`` set: ``MongoStore``
collections plus a ``GridFSStore`` for blobs (trajectory chunks, model files). The rest of the code talks to
maggma ``Store`` objects only and never needs to know which backend it has.

Collections (key field in brackets):

=================  ==================  ====================================================================
name               key                 content
=================  ==================  ====================================================================
``jobs``           ``uuid``            jobflow's job outputs (the JobStore docs store)
``data``           ``blob_uuid``       blobs: trajectory chunks, checkpoints, model files (JobStore ``data``)
``campaigns``      ``campaign_id``     campaign specifications
``systems``        ``system_id``       packed electrolyte boxes with counts and provenance
``models``         ``model_id``        model identities, training settings and held-out errors
``committees``     ``committee_id``    model committees: member ids, trust threshold, refine lineage
``trajectories``   ``trajectory_id``   MD run metadata (status, settings, model identity, frame counts)
``structure``      ``trajectory_id``   RDFs, coordination numbers
``transport``      ``trajectory_id``   self-diffusion coefficients
``pairing``        ``trajectory_id``   ion-pair fractions
``kinetics``       ``trajectory_id``   water residence times
``audits``         ``audit_id``        committee audits of trajectories: σ_F per frame, model-trust verdict
``electrolytes``   ``electrolyte_id``  one summary per (salt, molality, temperature, model)
``thermo``         ``thermo_id``       activity/osmotic coefficients over a concentration series
``solvation``      ``solvation_id``    solvation free energies from thermodynamic integration
``builds``         ``build_id``        why a builder skipped an input; one record per ``electrodb build`` run
=================  ==================  ====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobflow import SETTINGS, JobStore
from maggma.core import Store
from maggma.stores import GridFSStore, MemoryStore, MongoStore

from electrodb.documents.registry import (
    BLOB_COLLECTION,
    BLOB_INDEXED,
    BLOB_KEY,
    PROPERTIES,
    PROPERTY_COLLECTIONS,
    job_collections,
)
from electrodb.documents.registry import COLLECTIONS as REGISTRY
from electrodb.settings import ElectroDBSettings, get_settings, masked_uri
from electrodb.store.errors import StoreUnavailableError
from electrodb.store.sqlite import SQLiteStore
from electrodb.store.sqlite_migrate import migrate_montydb, montydb_collections

__all__ = [
    "COLLECTIONS",
    "INDEXED_FIELDS",
    "JOB_COLLECTIONS",
    "ElectroDBStores",
    "ReadOnlyStoreError",
    "StoreUnavailableError",
    "get_stores",
]

#: Collection name -> natural key, from the registry (:data:`electrodb.documents.registry.COLLECTIONS`).
COLLECTIONS: dict[str, str] = {name: entry.key for name, entry in REGISTRY.items()}
# What jobs write besides their outputs: these travel as additional stores of the JobStore (with ``data``), so a
# job reaches them only through the JobStore its manager hands it (run_locally, FireWorks, jobflow-remote).
JOB_COLLECTIONS: tuple[str, ...] = job_collections()
JOBFLOW_UPSERT_KEY = ["uuid", "index"]  # jobflow's JobStore.update key for the jobs collection
#: Fields indexed on both backends, besides each collection's key.
INDEXED_FIELDS: dict[str, list[str]] = {
    **{name: list(entry.indexed) for name, entry in REGISTRY.items() if entry.indexed},
    BLOB_COLLECTION: list(BLOB_INDEXED),  # GridFS: metadata.* of data.files
}


def mongo_indexed_fields(name: str) -> list[str]:
    """Fields indexed on MongoDB for collection ``name``: :data:`INDEXED_FIELDS`, the collection's key (list
    tie-breaker and ``/{id}`` look-ups), and every filter the API exposes there, so no API query scans a
    collection (the embedded store answers these from its own columns, the read model or ``json_extract``)."""
    extra: dict[str, list[str]] = {
        "electrolytes": [
            *(f for p in PROPERTIES for f in (p, f"{p}_status")),
            # the model-trust filters, and superseded_by: every default /electrolytes query asks for it null
            *("model_trust", "frac_flagged", "sigma_F_max_p95", "committee_id", "refine_round", "superseded_by"),
        ],
        "committees": ["refine_round"],
        "audits": ["salt", "frac_flagged"],
        **{name: ["electrolyte_id"] for name in PROPERTY_COLLECTIONS},
        "models": ["kind"],
        "thermo": ["campaign_ids", "status"],
        "solvation": ["campaign_ids"],
    }
    key = COLLECTIONS.get(name)
    return list(dict.fromkeys([*([key] if key else []), *INDEXED_FIELDS.get(name, []), *extra.get(name, [])]))


# Embedded store only: covering indexes for the API's usual filters (salt, then molality/temperature ranges).
COMPOUND_INDEXES: dict[str, list[list[str]]] = {
    name: [list(index) for index in entry.compound] for name, entry in REGISTRY.items() if entry.compound
}


class ReadOnlyStoreError(PermissionError):
    """A write was attempted through a store opened read-only (e.g. by the API)."""


class EmbeddedStore(SQLiteStore):
    """The embedded default: one SQLite file per collection with expression indexes, safe with several writer
    processes (see :mod:`electrodb.store.sqlite`)."""


class _PinnedKeyMixin:
    """Keeps the key a collection was made with.

    jobflow's ``JobStore`` sets the key of every additional store to ``blob_uuid``. For ``data`` that is its key;
    for the collections jobs write (:data:`JOB_COLLECTIONS`) it would make every upsert without an explicit key,
    including jobflow-remote's copy of a worker's results into the real stores, use a field their documents lack.
    """

    @property
    def key(self) -> str:
        return self.__dict__["_natural_key"]

    @key.setter
    def key(self, value: str) -> None:
        self.__dict__.setdefault("_natural_key", value)  # the first value (the constructor's) stays


class JobCollectionStore(_PinnedKeyMixin, EmbeddedStore):
    """Embedded store of a collection jobs write; keeps its own key inside a JobStore."""


class JobCollectionMongoStore(_PinnedKeyMixin, MongoStore):
    """MongoDB store of a collection jobs write; keeps its own key inside a JobStore."""


class _ReadOnlyMixin:
    def update(self, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyStoreError(f"store {self.collection_name!r} is read-only")  # type: ignore[attr-defined]

    def remove_docs(self, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyStoreError(f"store {self.collection_name!r} is read-only")  # type: ignore[attr-defined]

    def ensure_index(self, *args: Any, **kwargs: Any) -> bool:
        return False


class ReadOnlyEmbeddedStore(_ReadOnlyMixin, EmbeddedStore):
    """Embedded store that refuses writes."""


class ReadOnlyMongoStore(_ReadOnlyMixin, MongoStore):
    """MongoDB store that refuses writes."""


class ReadOnlyGridFSStore(_ReadOnlyMixin, GridFSStore):
    """GridFS store that refuses writes."""


def _make_store(settings: ElectroDBSettings, name: str, key: str, read_only: bool, create: bool = True) -> Store:
    writable_embedded = JobCollectionStore if name in JOB_COLLECTIONS else EmbeddedStore
    timeout = {"serverSelectionTimeoutMS": round(settings.db_timeout_s * 1000)}
    if settings.embedded:
        cls = ReadOnlyEmbeddedStore if read_only else writable_embedded
        store = cls(
            name,
            str(settings.database_path),
            settings.db_name,
            indexed_fields=INDEXED_FIELDS.get(name, []),
            compound_indexes=COMPOUND_INDEXES.get(name, []),
            key=key,
            last_updated_field="last_updated",
        )
        store.create_missing = create
        return store
    if name == BLOB_COLLECTION:
        cls_g = ReadOnlyGridFSStore if read_only else GridFSStore
        return cls_g(
            settings.db_name,
            name,
            uri=settings.db_uri,
            key=key,
            compression=True,
            searchable_fields=list(INDEXED_FIELDS["data"]),  # a copy: JobStore appends job_uuid/job_index to it
            mongoclient_kwargs=timeout,
        )
    cls_m = ReadOnlyMongoStore if read_only else (JobCollectionMongoStore if name in JOB_COLLECTIONS else MongoStore)
    return cls_m(
        settings.db_name,
        name,
        uri=settings.db_uri,
        key=key,
        last_updated_field="last_updated",
        mongoclient_kwargs=timeout,
    )


@dataclass
class ElectroDBStores:
    """The connected-on-demand stores of one ElectroDB database."""

    settings: ElectroDBSettings
    read_only: bool = False
    _stores: dict[str, Store] = field(default_factory=dict, repr=False)
    owns_connections: bool = True  # False for a view over a JobStore that its manager opened and closes
    #: The database must exist already: an embedded one is never created (no folder, no collection file; each
    #: missing is a :class:`StoreUnavailableError`), and a MongoDB server must answer on :meth:`connect`.
    require_database: bool = False
    _pinged: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self._stores:  # a view over given stores (:meth:`from_job_store`)
            return
        if self.settings.embedded:
            self._check_folder()
            if not self.require_database:
                try:
                    self.settings.database_path.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreUnavailableError(
                        f"cannot create the database folder {self.settings.database_path} ({exc.strerror or exc}); "
                        "point ELECTRODB_DATA_DIR at a folder you can write",
                        public="the database folder cannot be created",
                    ) from None
            if montydb_collections(self.settings.database_path, self.settings.db_name):
                keys: dict[str, str | list[str]] = {
                    **COLLECTIONS,
                    BLOB_COLLECTION: BLOB_KEY,
                    "jobs": JOBFLOW_UPSERT_KEY,
                }
                migrate_montydb(self.settings.database_path, self.settings.db_name, keys)
        for name, key in {**COLLECTIONS, BLOB_COLLECTION: BLOB_KEY}.items():
            self._stores[name] = _make_store(self.settings, name, key, self.read_only, not self.require_database)

    def _check_folder(self) -> None:
        """The data folder is a folder; with ``require_database`` the database folder exists."""
        data_dir = self.settings.data_dir
        for folder in (data_dir, *data_dir.parents):
            if folder.exists() and not folder.is_dir():
                raise StoreUnavailableError(
                    f"ELECTRODB_DATA_DIR is {data_dir}, but {folder} is a file, not a folder; point "
                    "ELECTRODB_DATA_DIR at a folder (it is created if missing)",
                    public="the data folder is not a folder",
                )
            if folder.exists():
                break
        folder = self.settings.database_path / self.settings.db_name
        if self.require_database and not folder.is_dir():
            raise StoreUnavailableError(
                f"no ElectroDB database in {data_dir} (no folder {folder}); check ELECTRODB_DATA_DIR, or make a "
                "database with `electrodb ingest`, `electrodb campaign run` or `electrodb demo`",
                public="no database",
            )

    def ping(self) -> None:
        """Check, once, that the MongoDB server answers within ``settings.db_timeout_s`` (embedded: nothing).

        Raises :class:`StoreUnavailableError` naming the URI (password masked) and the fix.
        """
        if self.settings.embedded or self._pinged or self.settings.db_uri is None:
            return
        store = next((s for s in self._stores.values() if isinstance(s, MongoStore)), None)
        if store is None:
            return
        from pymongo.errors import PyMongoError  # pymongo comes with maggma; only the MongoDB backend needs it

        uri = masked_uri(self.settings.db_uri)
        try:
            store.connect()
            store._collection.database.client.admin.command("ping")
        except PyMongoError as exc:
            first = str(exc).split(" (configured")[0].split(",")[0].split("\n")[0][:200]
            raise StoreUnavailableError(
                f"MongoDB at {uri} did not answer within {self.settings.db_timeout_s:g} s ({type(exc).__name__}: "
                f"{first}); check ELECTRODB_DB_URI and that the server runs, or unset ELECTRODB_DB_URI to use the "
                "embedded database",
                public="the MongoDB server does not answer",
            ) from None
        self._pinged = True

    def __getitem__(self, name: str) -> Store:
        try:
            return self._stores[name]
        except KeyError:
            raise KeyError(f"no store named {name!r}; stores are {sorted(self._stores)}") from None

    def __getattr__(self, name: str) -> Store:
        if name.startswith("_") or (name not in COLLECTIONS and name != BLOB_COLLECTION):
            raise AttributeError(name)
        return self._stores[name]

    @property
    def names(self) -> list[str]:
        return sorted(self._stores)

    def connect(self, *names: str) -> ElectroDBStores:
        """Connect the named stores (all when none given) and create indexes on filtered fields.

        A MongoDB server is pinged first (:meth:`ping`), so a URI that does not answer fails within
        ``settings.db_timeout_s`` with one line.
        """
        self.ping()
        for name in names or self.names:
            store = self._stores[name]
            store.connect()
            if not self.read_only:
                embedded = isinstance(store, SQLiteStore)
                for fld in INDEXED_FIELDS.get(name, []) if embedded else mongo_indexed_fields(name):
                    store.ensure_index(fld)
        return self

    def close(self) -> None:
        if not self.owns_connections:
            return
        for store in self._stores.values():
            try:
                store.close()
            except Exception:
                pass

    def job_store(self) -> JobStore:
        """jobflow JobStore: docs in ``jobs``; additional stores ``data`` (blobs, as atomate2 expects) and the
        collections jobs write (:data:`JOB_COLLECTIONS`). Jobs reach them only through this JobStore, so the
        same flow runs under ``run_locally``, FireWorks (which serialises it into each Firework) and
        jobflow-remote (whose workers get file stores for each additional store, copied back on completion)."""
        extra = {name: self._stores[name] for name in JOB_COLLECTIONS}
        return JobStore(self._stores["jobs"], additional_stores={"data": self._stores[BLOB_COLLECTION], **extra})

    @classmethod
    def from_job_store(
        cls, job_store: JobStore, settings: ElectroDBSettings | None = None, owns_connections: bool = False
    ) -> ElectroDBStores:
        """The stores of a jobflow ``JobStore``: ``jobs`` is its docs store, and every other collection is the
        additional store of that name, or else a sibling collection of the docs store (same SQLite folder,
        same MongoDB database, or a new ``MemoryStore``). Collections that cannot be derived are absent."""
        docs = job_store.docs_store
        stores: dict[str, Store] = {"jobs": docs}
        for name, key in {**COLLECTIONS, BLOB_COLLECTION: BLOB_KEY}.items():
            if name in job_store.additional_stores:
                stores[name] = job_store.additional_stores[name]
            elif name != "jobs" and (sibling := _sibling_store(docs, name, key)) is not None:
                stores[name] = sibling
        return cls(settings or get_settings(), _stores=stores, owns_connections=owns_connections)

    def counts(self) -> dict[str, int]:
        """Number of documents per collection."""
        self.connect()
        return {name: self._stores[name].count() for name in self.names}

    def __enter__(self) -> ElectroDBStores:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sibling_store(docs: Store, name: str, key: str) -> Store | None:
    """A collection ``name`` beside ``docs`` (same backend and database), or None when the backend is unknown."""
    if isinstance(docs, SQLiteStore):
        cls = JobCollectionStore if name in JOB_COLLECTIONS else EmbeddedStore  # as _make_store chooses
        return cls(
            name,
            docs.database_path,
            docs.database_name,
            indexed_fields=INDEXED_FIELDS.get(name, []),
            compound_indexes=COMPOUND_INDEXES.get(name, []),
            key=key,
            last_updated_field="last_updated",
        )
    if isinstance(docs, MemoryStore):
        return MemoryStore(f"{docs.collection_name}-{name}", key=key)
    if isinstance(docs, MongoStore):
        return MongoStore.from_collection(docs._coll.database[name]) if docs._coll is not None else None
    return None


def get_stores(
    settings: ElectroDBSettings | None = None, read_only: bool = False, require_database: bool = False
) -> ElectroDBStores:
    """Stores for ``settings`` (default: the process settings). Call ``.connect()`` or use ``with``.

    ``require_database``: the database must exist (what readers such as the API, ``db info`` and ``export``
    ask): nothing is created, and a missing database or collection file is a :class:`StoreUnavailableError`.
    With ``use_jobflow_store`` the stores are those of jobflow's configured ``JOB_STORE`` (not read-only-wrapped:
    the API then relies on its own GET-only routes)."""
    settings = settings or get_settings()
    if settings.use_jobflow_store:
        return ElectroDBStores.from_job_store(SETTINGS.JOB_STORE, settings, owns_connections=True)
    return ElectroDBStores(settings, read_only=read_only, require_database=require_database)
