"""One settings object for ElectroDB, read from environment variables and an optional YAML file.

Precedence (highest first): keyword arguments, ``ELECTRODB_*`` environment variables, the YAML file named by
``ELECTRODB_CONFIG``, defaults. With no configuration at all ElectroDB uses an embedded on-disk database
(SQLite files, one per collection) under ``./electrodb-data`` and needs no server.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

__all__ = ["ElectroDBSettings", "get_settings", "masked_uri"]


def masked_uri(uri: str) -> str:
    """``uri`` with the password of its credentials (``user:password@``) replaced by ``***``."""
    scheme, sep, rest = uri.partition("://")
    if not sep or "@" not in rest:
        return uri
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in credentials else ''}@{host}"


class ElectroDBSettings(BaseSettings):
    """Where data lives and how ElectroDB reaches it.

    Attributes
    ----------
    data_dir
        Folder for the embedded database, cached models and work folders (made absolute on load: MontyStore
        paths must be absolute or they land inside job folders).
    db_uri
        ``mongodb://…`` or ``mongodb+srv://…``; when set, stores are maggma ``MongoStore`` collections and
        trajectory blobs go to a ``GridFSStore``. ``None`` selects the embedded SQLite database.
    db_name
        Database name on the MongoDB server (and of the embedded database).
    model_cache
        Folder searched for MACE foundation-model files (``mace-mp-0:small`` …), which cannot be downloaded here.
    trajectory_chunk_frames
        Frames per stored trajectory chunk; bounds each stored document well below MongoDB's 16 MB limit.
    db_timeout_s
        How long to wait for the MongoDB server of ``db_uri`` to answer (s) before an operation fails (pymongo's
        ``serverSelectionTimeoutMS``; its default of 30 s would leave a command hanging on a mistyped URI).
    use_jobflow_store
        Take the database from jobflow's own ``JOB_STORE`` configuration (``~/.jobflow.yaml`` or
        ``JOBFLOW_JOB_STORE``) instead of ``db_uri``/``data_dir``: ``jobs`` is its docs store, the other
        collections are its additional stores of the same names, or siblings of its docs store
        (``ElectroDBStores.from_job_store``). Either way one database serves jobs, builders and the API.
    resume_dir
        Worker-local folder where production MD keeps a working copy of its frames and checkpoints when the job's
        stores live in its own job folder (jobflow-remote workers, whose job folders a rerun deletes;
        :mod:`electrodb.flows.resume`); default ``<data_dir>/resume``.
    cors_origins
        Origins allowed to call the read-only API from a browser (``ELECTRODB_CORS_ORIGINS='["https://…"]'``);
        empty (the default) leaves CORS off.
    """

    model_config = SettingsConfigDict(env_prefix="ELECTRODB_", extra="forbid")

    data_dir: Path = Field(default=Path("electrodb-data"))
    db_uri: str | None = None
    db_name: str = "electrodb"
    db_timeout_s: float = Field(default=5.0, gt=0, le=600)
    model_cache: Path | None = None
    trajectory_chunk_frames: int = Field(default=200, ge=1, le=100_000)
    use_jobflow_store: bool = False
    resume_dir: Path | None = None
    cors_origins: list[str] = Field(
        default_factory=list, description="origins the read-only API answers cross-origin (empty: CORS off)"
    )

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("resume_dir", mode="after")
    @classmethod
    def _absolute_or_none(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().resolve()

    @field_validator("db_uri", mode="after")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError(
                f"ELECTRODB_DB_URI must start with mongodb:// or mongodb+srv://, got {value!r}; "
                "unset it to use the embedded database"
            )
        return value

    @property
    def embedded(self) -> bool:
        """True when the embedded (SQLite) database is used."""
        return self.db_uri is None and not self.use_jobflow_store

    @property
    def database_path(self) -> Path:
        return self.data_dir / "db"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "work"

    @property
    def resume_folder(self) -> Path:
        """Where production working copies live (``resume_dir``, else ``<data_dir>/resume``)."""
        return self.resume_dir or self.data_dir / "resume"

    def describe(self) -> str:
        """Human-readable location of the data (never prints credentials)."""
        if self.embedded:
            return f"embedded SQLite at {self.database_path}"
        uri = self.db_uri or ""
        host = uri.split("@")[-1] if "@" in uri else uri.split("://", 1)[-1]
        return f"MongoDB {host.split('/')[0]} database {self.db_name!r} (+ GridFS for trajectories)"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("ELECTRODB_CONFIG")
        if config_file:
            if not Path(config_file).is_file():
                raise FileNotFoundError(f"ELECTRODB_CONFIG points to {config_file!r}, which does not exist")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


@lru_cache(maxsize=1)
def get_settings() -> ElectroDBSettings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after changing the environment)."""
    return ElectroDBSettings()
