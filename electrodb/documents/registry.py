"""The registry: every headline property and every collection of an ElectroDB database, described once.

Everything that lists properties or collections reads them from here, so adding one is a registry entry, not a
hunt through the code:

- :data:`PROPERTIES`: one :class:`PropertyEntry` per headline property ``P`` of the ``electrolytes`` summaries
  (unit, description, where the per-trajectory value, error and convergence verdict live, the experimental
  reference beside it, the explorer column and the figure that shows how it was obtained). The summary builder
  extracts and merges ``P`` from these paths; the API's filters (``P_min``, ``P_max``, ``P_status``), its
  OpenAPI schema and ``GET /properties``, the export's columns (``P_<unit>``, ``P_err_<unit>``, ``P_status``,
  ``P_reason``, ``exp_P_<unit>``), the client's typed documents, the explorer's columns and MongoDB's indexes
  all follow.
- :data:`COLLECTIONS`: one :class:`CollectionEntry` per collection (name, natural key, document schema, indexed
  fields, whether jobs write it through their JobStore). :mod:`electrodb.store.stores` builds every store from
  it and the API's query layer (:mod:`electrodb.store.query_specs`) takes keys and schemas from it.

A property entry's paths point into the documents of :mod:`electrodb.documents.properties` (``source`` names the
collection, or ``"trajectory"`` for run-level quantities stored in the trajectory metadata). The verdict entry is
the dict holding that property's ``status``, ``criterion`` and ``reason`` (:mod:`electrodb.analysis.convergence`).

How to add a property: ``docs/architecture.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from electrodb.documents.committee import AuditDocument, CommitteeDocument
from electrodb.documents.properties import (
    ElectrolyteSummary,
    KineticsDoc,
    PairingDoc,
    StructureDoc,
    TransportDoc,
)
from electrodb.documents.solvation import SolvationDocument
from electrodb.documents.trajectory import TrajectoryDocument

__all__ = [
    "BLOB_COLLECTION",
    "BLOB_INDEXED",
    "BLOB_KEY",
    "COLLECTIONS",
    "EXPERIMENT_KINDS",
    "PROPERTIES",
    "PROPERTY_COLLECTIONS",
    "PROPERTY_SOURCES",
    "SUMMARY_PROPERTIES",
    "CollectionEntry",
    "PropertyEntry",
    "job_collections",
    "property_table",
]

#: The per-trajectory property collections (one document per trajectory, keyed by ``trajectory_id``).
PROPERTY_COLLECTIONS = ("structure", "transport", "pairing", "kinetics")
#: Where per-trajectory property values can come from: a property collection, or the trajectory metadata.
PROPERTY_SOURCES = (*PROPERTY_COLLECTIONS, "trajectory")
#: Kinds of experimental reference :mod:`electrodb.builders.reference` can look up (``PropertyEntry.experiment``).
EXPERIMENT_KINDS = ("diffusion", "shell_r", "shell_cn", "density", "conductivity")


@dataclass(frozen=True)
class PropertyEntry:
    """One headline property ``P`` of the ``electrolytes`` summaries.

    Attributes
    ----------
    name
        The summary field (``D_cation``); the summary also holds ``P_err``, ``P_status``, ``P_criterion``,
        ``P_reason``, ``P_n_runs``, ``P_n_eff`` and ``P_t_equil_ps`` (from the ``n_eff`` and ``t_equil_ps`` of
        the verdict entries of the merged runs) and, with experiment, ``exp_P``, ``exp_P_err``, ``exp_P_source``.
    unit
        Unit of ``P`` and ``P_err`` in the summary (``""`` for dimensionless); the export's column suffix.
    description
        One line for the API documentation, ``GET /properties`` and the explorer's tooltips.
    source
        Per-trajectory collection the value is read from (:data:`PROPERTY_SOURCES`).
    value, error
        Key paths of the value and its standard error in that document (``error`` None: no error is stored).
    verdict
        Key path of the entry holding the property's ``status``, ``criterion`` and ``reason`` (and, where the
        analysis records them, ``n_eff`` and ``t_equil_ps``). The verdicts of ``eta`` and of the run-level
        quantities (``density``, ``T_mean``) are made by the summary builder, which also decides when a value is
        an ``input`` (η from a correlation, a fixed density).
    scale
        Factor from the stored unit to ``unit`` (Pa s → mPa s: 1e3).
    experiment
        ``(kind, which)`` of the experimental reference put beside it: kind in :data:`EXPERIMENT_KINDS`,
        which is ``"cation"``, ``"anion"``, ``"water"`` or ``"salt"``; None when there is none.
    label
        Column label in the explorer's table; None: not a default column.
    digits
        Significant digits the explorer shows.
    plot
        The figure that shows how the value was obtained (``"rdf"``: g(r) with n(r); ``"msd"``: MSD with the fit
        window; ``"mscd"``: the collective charge MSD with its fit window beside the ions' self part), for
        ``electrodb plot`` and the explorer; None when there is none.
    """

    name: str
    unit: str
    description: str
    source: str
    value: tuple[str, ...]
    error: tuple[str, ...] | None
    verdict: tuple[str, ...]
    scale: float = 1.0
    experiment: tuple[str, str] | None = None
    label: str | None = None
    digits: int = 3
    plot: str | None = None

    def __post_init__(self) -> None:
        if self.source not in PROPERTY_SOURCES:
            raise ValueError(f"property {self.name}: unknown source {self.source!r}; use one of {PROPERTY_SOURCES}")
        if self.experiment is not None and self.experiment[0] not in EXPERIMENT_KINDS:
            raise ValueError(f"property {self.name}: unknown experiment kind {self.experiment[0]!r}")


def _diffusion(species: str, label: str, corrected: bool) -> PropertyEntry:
    where = ", Yeh–Hummer corrected to infinite box" if corrected else " in the simulated (finite, periodic) box"
    key = "D" if corrected else "D_pbc"
    return PropertyEntry(
        name=f"D_{species}" if corrected else f"D_{species}_pbc",
        unit="1e-9 m^2/s",
        description=f"{species} self-diffusion{where}",
        source="transport",
        value=("diffusion", species, key),
        error=("diffusion", species, f"{key}_err"),
        verdict=("diffusion", species),
        experiment=("diffusion", species) if corrected else None,
        label=label if corrected else None,
        plot="msd",
    )


def _shell(pair: str, name: str, what: str, unit: str, description: str, **kw: object) -> PropertyEntry:
    # a peak position has its own entry and verdict (shells[pair]["peak"]: no exchange needed, analysis.shell_peak);
    # the shell's top-level verdict is the CN's
    where = ("shells", pair, "peak") if what == "r_peak" else ("shells", pair)
    return PropertyEntry(
        name=name,
        unit=unit,
        description=description,
        source="structure",
        value=(*where, what),
        error=(*where, f"{what}_err"),
        verdict=where,
        plot="rdf",
        **kw,  # type: ignore[arg-type]
    )


def _pairing(kind: str, description: str, label: str | None = None) -> PropertyEntry:
    return PropertyEntry(
        name=f"{kind}_fraction_cation",
        unit="",
        description=description,
        source="pairing",
        value=("pairing", "cation", kind),
        error=("pairing", "cation_err", kind),
        verdict=("pairing",),
        label=label,
        digits=2,
    )


def _residence(ion: str) -> PropertyEntry:
    return PropertyEntry(
        name=f"tau_{ion}_water",
        unit="ps",
        description=f"first-shell water residence time around the {ion}",
        source="kinetics",
        value=("residence", ion, "tau_ps"),
        error=("residence", ion, "tau_err_ps"),
        verdict=("residence", ion),
    )


_ENTRIES: tuple[PropertyEntry, ...] = (
    _diffusion("cation", "D₊", True),
    _diffusion("anion", "D₋", True),
    _diffusion("water", "D_w", True),
    _diffusion("cation", "", False),
    _diffusion("anion", "", False),
    _diffusion("water", "", False),
    PropertyEntry(
        name="eta",
        unit="mPa s",
        description="shear viscosity used for the Yeh–Hummer correction (source in eta_source)",
        source="transport",
        value=("diffusion", "water", "viscosity_Pa_s"),
        error=("diffusion", "water", "viscosity_err_Pa_s"),
        verdict=("diffusion", "water", "viscosity"),
        scale=1e3,
    ),
    _shell(
        "cation-O_w",
        "r_cation_O",
        "r_peak",
        "Å",
        "cation–water-oxygen first-peak distance",
        experiment=("shell_r", "cation"),
        label="r₊O / Å",
    ),
    _shell(
        "anion-O_w",
        "r_anion_O",
        "r_peak",
        "Å",
        "anion–water-oxygen first-peak distance",
        experiment=("shell_r", "anion"),
    ),
    _shell(
        "cation-O_w",
        "cn_cation_O",
        "cn",
        "",
        "cation hydration number (water O within the first minimum)",
        experiment=("shell_cn", "cation"),
        label="CN₊O",
    ),
    _shell(
        "anion-O_w",
        "cn_anion_O",
        "cn",
        "",
        "anion hydration number (water O within the first minimum)",
        experiment=("shell_cn", "anion"),
    ),
    _shell("cation-anion", "cn_cation_anion", "cn", "", "counter-ions within the cation's first minimum"),
    _shell(
        "O_w-O_w",
        "r_water_O",
        "r_peak",
        "Å",
        "water–water oxygen first-peak distance",
        experiment=("shell_r", "water"),
    ),
    _shell(
        "O_w-O_w",
        "cn_water_O",
        "cn",
        "",
        "water oxygens within a water oxygen's first minimum",
        experiment=("shell_cn", "water"),
    ),
    _pairing("cip", "fraction of cations in contact ion pairs", label="CIP₊"),
    _pairing("agg", "fraction of cations in aggregates"),
    _pairing("free", "fraction of cations with no counter-ion in the first shell"),
    _residence("cation"),
    _residence("anion"),
    PropertyEntry(
        name="sigma",
        unit="S/m",
        description="ionic conductivity (Einstein–Helfand, collective charge displacement; finite box, time origins "
        "as samples)",
        source="transport",
        value=("conductivity", "sigma_S_m"),
        error=("conductivity", "sigma_err_S_m"),
        verdict=("conductivity",),
        experiment=("conductivity", "salt"),
        label="σ / S m⁻¹",
        plot="mscd",
    ),
    PropertyEntry(
        name="sigma_ne",
        unit="S/m",
        description="Nernst–Einstein conductivity from the ions' self-diffusion (no ion–ion correlation; finite box)",
        source="transport",
        value=("conductivity", "nernst_einstein", "sigma_S_m"),
        error=("conductivity", "nernst_einstein", "sigma_err_S_m"),
        verdict=("conductivity", "nernst_einstein"),
        plot="mscd",
    ),
    PropertyEntry(
        name="ionicity",
        unit="",
        description="σ/σ_NE, the inverse Haven ratio: 1 for uncorrelated ions, below 1 where pairs carry no current",
        source="transport",
        value=("conductivity", "ionicity", "value"),
        error=("conductivity", "ionicity", "err"),
        verdict=("conductivity", "ionicity"),
        digits=2,
        plot="mscd",
    ),
    PropertyEntry(
        name="t_plus",
        unit="",
        description="cation transference number from the Onsager coefficients (barycentric frame)",
        source="transport",
        value=("conductivity", "transference", "t_plus"),
        error=("conductivity", "transference", "t_plus_err"),
        verdict=("conductivity", "transference"),
        label="t₊",
        digits=2,
        plot="mscd",
    ),
    PropertyEntry(
        name="t_plus_ne",
        unit="",
        description="cation transference number, Nernst–Einstein estimate from self-diffusion",
        source="transport",
        value=("conductivity", "nernst_einstein", "t_plus"),
        error=("conductivity", "nernst_einstein", "t_plus_err"),
        verdict=("conductivity", "nernst_einstein"),
        digits=2,
    ),
    PropertyEntry(
        name="density",
        unit="kg/m^3",
        description="NPT equilibrium density (None when the density was a fixed input: status input, value in "
        "density_input)",
        source="trajectory",
        value=("density_kg_m3",),
        error=("density_err_kg_m3",),
        verdict=("density",),
        experiment=("density", "salt"),
    ),
    PropertyEntry(
        name="T_mean",
        unit="K",
        description="mean temperature of the production runs (the label is `temperature`)",
        source="trajectory",
        value=("mean_temperature_K",),
        error=("temperature_err_K",),
        verdict=("temperature",),
    ),
)

#: Every headline property of the summaries, in the order the API, the export and the explorer list them.
PROPERTIES: dict[str, PropertyEntry] = {p.name: p for p in _ENTRIES}
if len(PROPERTIES) != len(_ENTRIES):
    raise RuntimeError("two property entries share a name")
#: ``{P: (unit, description)}``: the headline properties as the API's parameter and schema builders read them.
SUMMARY_PROPERTIES: dict[str, tuple[str, str]] = {p.name: (p.unit, p.description) for p in _ENTRIES}


@dataclass(frozen=True)
class CollectionEntry:
    """One collection of the database.

    Attributes
    ----------
    name
        Collection name (``electrolytes``); also the API route ``/electrolytes`` when ``document`` is set.
    key
        Natural key: one document per value (upserts go by it).
    document
        Pydantic schema of its documents (None: free-form, e.g. campaign specs and job documents).
    indexed
        Fields indexed besides the key (both backends); :mod:`electrodb.store.stores` adds the API's filters on
        MongoDB.
    job_written
        Written by jobs through the JobStore jobflow hands them (an additional store of the JobStore), so that
        the same flow runs under run_locally, FireWorks and jobflow-remote.
    compound
        Covering indexes of the embedded store for the API's usual filters.
    """

    name: str
    key: str
    document: type[BaseModel] | None = None
    indexed: tuple[str, ...] = ()
    job_written: bool = False
    compound: tuple[tuple[str, ...], ...] = ()


_COMMON = ("salt", "cation", "anion", "molality", "temperature", "model_id", "campaign_ids", "system_id")
_SALT_RANGES = (("salt", "molality", "temperature"), ("salt", "temperature", "molality"))


_PROPERTY_DOCUMENTS: dict[str, type[BaseModel]] = {
    "structure": StructureDoc,
    "transport": TransportDoc,
    "pairing": PairingDoc,
    "kinetics": KineticsDoc,
}
if tuple(_PROPERTY_DOCUMENTS) != PROPERTY_COLLECTIONS:
    raise RuntimeError("every property collection needs its document schema")


def _property_collection(name: str, document: type[BaseModel]) -> CollectionEntry:
    return CollectionEntry(name, "trajectory_id", document, (*_COMMON, "last_updated"), compound=_SALT_RANGES)


#: Every collection, in the order :class:`electrodb.store.stores.ElectroDBStores` opens them.
COLLECTIONS: dict[str, CollectionEntry] = {
    c.name: c
    for c in (
        # a rerun removes the earlier attempt's job documents by the system id in their metadata
        CollectionEntry("jobs", "uuid", indexed=("metadata.electrodb_system_id",)),
        CollectionEntry("campaigns", "campaign_id"),
        CollectionEntry(
            "systems", "system_id", indexed=("salt", "molality", "temperature", "campaign_ids"), job_written=True
        ),
        CollectionEntry("models", "model_id", job_written=True),
        CollectionEntry(
            "committees", "committee_id", CommitteeDocument, ("name", "parent_id", "superseded_by"), job_written=True
        ),
        CollectionEntry(
            "trajectories",
            "trajectory_id",
            TrajectoryDocument,
            (*_COMMON, "status", "last_updated"),
            job_written=True,
            compound=_SALT_RANGES,
        ),
        *(_property_collection(name, document) for name, document in _PROPERTY_DOCUMENTS.items()),
        CollectionEntry(
            "audits",
            "audit_id",
            AuditDocument,
            ("trajectory_id", "committee_id", "system_id", "model_id", "last_updated"),
            job_written=True,
        ),
        # superseded_by: every default query of the API and the export asks for it null (a value column of its own)
        CollectionEntry(
            "electrolytes",
            "electrolyte_id",
            ElectrolyteSummary,
            (*_COMMON, "superseded_by"),
            compound=_SALT_RANGES,
        ),
        CollectionEntry("thermo", "thermo_id", indexed=("salt", "temperature", "model_id")),
        CollectionEntry(
            "solvation", "solvation_id", SolvationDocument, ("salt", "temperature", "model_id"), job_written=True
        ),
        CollectionEntry("builds", "build_id"),
    )
}
#: The blob store: trajectory chunks, checkpoints, TI records and staged models (GridFS on MongoDB), keyed by
#: ``blob_uuid``; its metadata fields are indexed (2e7 files at 1e4 systems).
BLOB_COLLECTION = "data"
BLOB_KEY = "blob_uuid"
BLOB_INDEXED = ("trajectory_id", "kind", "blob_uuid")


def job_collections() -> tuple[str, ...]:
    """Collections jobs write through their JobStore (its additional stores besides ``data``)."""
    return tuple(name for name, c in COLLECTIONS.items() if c.job_written)


def property_table() -> dict[str, dict[str, object]]:
    """What ``GET /properties`` serves for each headline property: unit, description, explorer label and digits,
    the figure that shows it and whether an experimental reference can be put beside it."""
    return {
        name: {
            "unit": p.unit,
            "description": p.description,
            "label": p.label,
            "digits": p.digits,
            "plot": p.plot,
            "experiment": p.experiment is not None,
        }
        for name, p in PROPERTIES.items()
    }
