"""What the HTTP API and the export allow on each collection: limits, value patterns and field tables.

The vocabulary half of the query layer: :class:`CollectionSpec` (key, known, sortable and heavy fields,
accepted filters, status vocabulary) and :data:`SPECS` for every served collection, the filter-name → field
tables (:data:`RANGE_FIELDS`, :data:`EQ_FIELDS`), page and list limits, and the anchored regexes the API
declares for its parameters (:func:`list_pattern`, :func:`fields_pattern`, :func:`sort_pattern`).
:mod:`electrodb.store.query` builds the criteria, projections and sorts from these (and re-exports every name here).
Needs only the document schemas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from electrodb.analysis.convergence import STATUSES
from electrodb.documents.committee import TRUST_STATUSES, AuditDocument, CommitteeDocument
from electrodb.documents.properties import ElectrolyteSummary
from electrodb.documents.registry import COLLECTIONS as REGISTRY
from electrodb.documents.registry import PROPERTY_COLLECTIONS, SUMMARY_PROPERTIES
from electrodb.documents.trajectory import TrajectoryDocument

__all__ = [
    "AUDIT_FRAME_FIELDS",
    "DEFAULT_LIMIT",
    "EQ_FIELDS",
    "INT_FIELDS",
    "LEGACY_THERMO_STATUSES",
    "MAX_LIMIT",
    "RANGE_FIELDS",
    "SPECS",
    "SUMMARY_EXTRA_FIELDS",
    "TRAJECTORY_STATUSES",
    "TRUST_FIELDS",
    "VOCABULARIES",
    "CollectionSpec",
    "fields_pattern",
    "list_pattern",
    "property_fields",
    "sort_pattern",
    "summary_fields",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_SKIP = 1_000_000_000
MAX_SORT_KEYS = 3
MAX_LIST = 50  # values in one comma-separated list filter

#: Salt formulas (``NaCl``, ``Ca(NO3)2``, ``LiTFSI``) or ``cation/anion`` names (``Li+/TFSI-``).
SALT_ITEM = r"[A-Za-z][A-Za-z0-9()/+\- ]{0,39}"
#: Ion names (``Li+``, ``SO4 2-``) or formulas (``Li``, ``SO4``).
ION_ITEM = r"[A-Za-z][A-Za-z0-9()+\- ]{0,23}"
#: Identifiers in query strings (model ids look like ``sha256:…`` or ``name:mace-mp-0:small@mace-torch==0.3``).
ID_ITEM = r"[A-Za-z0-9][A-Za-z0-9_.:@=+\-/]{0,199}"
SALT_PATTERN = rf"^{SALT_ITEM}$"
ION_PATTERN = rf"^{ION_ITEM}$"
ID_PATTERN = rf"^{ID_ITEM}$"
#: Identifiers in URL paths (no ``/``).
PATH_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@=+\-]{0,199}$"
#: Projection paths: a top-level field, optionally with sub-keys (``rdf.cation-O_w``).
FIELD_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_][A-Za-z0-9_\-]*){0,4}$")
_SUBPATH = r"(?:\.[A-Za-z0-9_][A-Za-z0-9_\-]*){0,4}"

TRAJECTORY_STATUSES: tuple[str, ...] = ("running", "completed", "unstable", "failed")
#: Statuses of ``thermo`` documents written before the convergence vocabulary (still served and filterable).
LEGACY_THERMO_STATUSES: tuple[str, ...] = ("ok", "derivative_only")
#: Summary fields besides the schema's and the per-property ones (written by the summary builder).
SUMMARY_EXTRA_FIELDS: tuple[str, ...] = ("model_name", "density_source", "density_input", "eta_source")
#: The model-trust fields of a summary (a committee audit's verdict, :mod:`electrodb.builders.trust`), served,
#: exported and shown beside the convergence statuses.
TRUST_FIELDS: tuple[str, ...] = (
    "model_trust",
    "model_trust_reason",
    "model_trust_criterion",
    "frac_flagged",
    "sigma_F_max_p95",
    "n_frames_audited",
    "committee_id",
    "committee_name",
    "refine_round",
    "superseded_by",
)
#: Equality filters whose values are a fixed vocabulary (besides the ``*status`` filters): refused with close
#: matches when a value is not in it.
VOCABULARIES: dict[str, tuple[str, ...]] = {"model_trust": TRUST_STATUSES}
#: Equality filters on integer fields (the query string's digits are matched as numbers).
INT_FIELDS: tuple[str, ...] = ("refine_round",)
#: The per-frame lists of an audit: left out of ``/audits`` answers unless named in ``_fields``.
AUDIT_FRAME_FIELDS: tuple[str, ...] = (
    "frames",
    "times_ps",
    "sigma_F_max",
    "sigma_F_mean",
    "sigma_F_p95",
    "sigma_E_meV_per_atom",
)


def list_pattern(item: str, max_items: int = MAX_LIST) -> str:
    """Anchored regex of one ``item`` or a comma-separated list of at most ``max_items`` of them."""
    return rf"^(?:{item})(?:,(?:{item})){{0,{max_items - 1}}}$"


def _alternation(words: Iterable[str]) -> str:
    return "(?:" + "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w))) + ")"


def property_fields(prop: str) -> tuple[str, ...]:
    """Top-level summary fields of one headline property ``P``."""
    return (
        prop,
        f"{prop}_err",
        f"{prop}_status",
        f"{prop}_reason",
        f"{prop}_criterion",
        f"{prop}_n_runs",
        f"{prop}_n_eff",
        f"{prop}_t_equil_ps",
        f"{prop}_needs_ps",
        f"exp_{prop}",
        f"exp_{prop}_source",
    )


def summary_fields() -> list[str]:
    """Every known top-level field of an ``electrolytes`` document (schema fields + flattened properties)."""
    names = list(ElectrolyteSummary.model_fields)
    for prop in SUMMARY_PROPERTIES:
        names += property_fields(prop)
    names += SUMMARY_EXTRA_FIELDS
    return list(dict.fromkeys(names))


_SUMMARY_SCALARS = (
    "electrolyte_id",
    "salt",
    "cation",
    "anion",
    "nu_cation",
    "nu_anion",
    "cation_charge",
    "anion_charge",
    "cation_radius_A",
    "anion_radius_A",
    "molality",
    "temperature",
    "model_id",
    "model_name",
    "n_runs",
    "total_ps",
    "n_atoms",
    "model_trust",
    "frac_flagged",
    "sigma_F_max_p95",
    "last_updated",
)
_PROPERTY_SCALARS = (
    "trajectory_id",
    "electrolyte_id",
    "system_id",
    "salt",
    "cation",
    "anion",
    "molality",
    "temperature",
    "model_id",
    "n_frames",
    "duration_ps",
    "last_updated",
)
_PROPERTY_FILTERS = (
    "salt",
    "cation",
    "anion",
    "model_id",
    "campaign",
    "trajectory_id",
    "electrolyte_id",
    "system_id",
    "molality_min",
    "molality_max",
    "temperature_min",
    "temperature_max",
)


@dataclass(frozen=True)
class CollectionSpec:
    """What the API allows on one collection.

    Attributes
    ----------
    name, key
        Collection name and its key field (always returned, the sort tie-breaker).
    fields
        Known top-level fields for ``_fields``; ``None`` for generic collections (any safe field name).
    sortable
        Fields accepted by ``_sort_fields``.
    filters
        Filter parameter names accepted by :func:`build_criteria`.
    heavy
        Large per-atom fields left out unless named in ``_fields``.
    statuses
        Allowed values of the ``status`` filter (empty: no vocabulary check).
    superseded
        Documents with ``superseded_by`` set (results a refined committee's model replaced) are left out unless
        the ``include_superseded`` filter is true (:func:`electrodb.store.query.build_criteria`).
    """

    name: str
    key: str
    fields: frozenset[str] | None
    sortable: tuple[str, ...]
    filters: tuple[str, ...]
    heavy: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    superseded: bool = False


def _property_spec(name: str, model: type | None) -> CollectionSpec:
    if model is None:
        raise RuntimeError(f"property collection {name} has no document schema in the registry")
    return CollectionSpec(name, REGISTRY[name].key, frozenset(model.model_fields), _PROPERTY_SCALARS, _PROPERTY_FILTERS)


#: Range filter ``<name>_min`` / ``<name>_max`` → document field.
RANGE_FIELDS: dict[str, str] = {
    "molality": "molality",
    "temperature": "temperature",
    **{p: p for p in SUMMARY_PROPERTIES},
    **{f"{p}_needs_ps": f"{p}_needs_ps" for p in SUMMARY_PROPERTIES},
    "frac_flagged": "frac_flagged",
    "sigma_F_max_p95": "sigma_F_max_p95",
}
#: Equality filter name → document field.
EQ_FIELDS: dict[str, str] = {
    "salt": "salt",
    "cation": "cation",
    "anion": "anion",
    "model_id": "model_id",
    "campaign": "campaign_ids",
    "trajectory_id": "trajectory_id",
    "electrolyte_id": "electrolyte_id",
    "system_id": "system_id",
    "status": "status",
    "campaign_id": "campaign_id",
    "kind": "kind",
    "thermo_id": "thermo_id",
    "solvation_id": "solvation_id",
    **{f"{p}_status": f"{p}_status" for p in SUMMARY_PROPERTIES},
    "model_trust": "model_trust",
    "committee_id": "committee_id",
    "refine_round": "refine_round",
    "parent_id": "parent_id",
}

SPECS: dict[str, CollectionSpec] = {
    "electrolytes": CollectionSpec(
        "electrolytes",
        "electrolyte_id",
        frozenset(summary_fields()),
        _SUMMARY_SCALARS
        + tuple(f for p in SUMMARY_PROPERTIES for f in (p, f"{p}_err", f"{p}_status", f"{p}_needs_ps", f"exp_{p}")),
        (
            "salt",
            "cation",
            "anion",
            "model_id",
            "campaign",
            "electrolyte_id",
            "molality_min",
            "molality_max",
            "temperature_min",
            "temperature_max",
            *(f"{p}_{b}" for p in SUMMARY_PROPERTIES for b in ("min", "max")),
            *(f"{p}_needs_ps_{b}" for p in SUMMARY_PROPERTIES for b in ("min", "max")),
            *(f"{p}_status" for p in SUMMARY_PROPERTIES),
            "model_trust",
            "frac_flagged_min",
            "frac_flagged_max",
            "sigma_F_max_p95_min",
            "sigma_F_max_p95_max",
            "committee_id",
            "refine_round",
            "include_superseded",
        ),
        superseded=True,
    ),
    **{name: _property_spec(name, REGISTRY[name].document) for name in PROPERTY_COLLECTIONS},
    "trajectories": CollectionSpec(
        "trajectories",
        "trajectory_id",
        frozenset(TrajectoryDocument.model_fields),
        (
            "trajectory_id",
            "system_id",
            "salt",
            "molality",
            "temperature",
            "status",
            "model_id",
            "n_atoms",
            "n_frames",
            "duration_ps",
            "created_at",
            "last_updated",
        ),
        (
            "salt",
            "status",
            "model_id",
            "campaign",
            "system_id",
            "trajectory_id",
            "molality_min",
            "molality_max",
            "temperature_min",
            "temperature_max",
        ),
        heavy=("symbols", "masses", "role", "mol_id", "ion_center"),
        statuses=TRAJECTORY_STATUSES,
    ),
    "models": CollectionSpec(
        "models", "model_id", None, ("model_id", "name", "kind", "last_updated"), ("model_id", "kind")
    ),
    "campaigns": CollectionSpec(
        "campaigns", "campaign_id", None, ("campaign_id", "name", "last_updated"), ("campaign_id",)
    ),
    "thermo": CollectionSpec(
        "thermo",
        "thermo_id",
        None,
        ("thermo_id", "salt", "temperature", "model_id", "status", "last_updated"),
        ("salt", "model_id", "campaign", "thermo_id", "status", "temperature_min", "temperature_max"),
        # a thermo series is computed from the runs, never an input
        statuses=tuple(s for s in STATUSES if s != "input") + LEGACY_THERMO_STATUSES,
    ),
    "solvation": CollectionSpec(
        "solvation",
        "solvation_id",
        None,
        ("solvation_id", "salt", "temperature", "model_id", "last_updated"),
        ("salt", "model_id", "campaign", "solvation_id", "temperature_min", "temperature_max"),
    ),
    # a registry of committees, superseded ones included (their lineage is the point); only results are hidden
    "committees": CollectionSpec(
        "committees",
        "committee_id",
        frozenset(CommitteeDocument.model_fields),
        ("committee_id", "name", "refine_round", "threshold_eV_per_A", "last_updated"),
        ("committee_id", "parent_id", "refine_round"),
    ),
    "audits": CollectionSpec(
        "audits",
        "audit_id",
        frozenset(AuditDocument.model_fields),
        (
            "audit_id",
            "trajectory_id",
            "system_id",
            "committee_id",
            "frac_flagged",
            "sigma_F_max_p95",
            "n_frames_audited",
            "last_updated",
        ),
        (
            "trajectory_id",
            "committee_id",
            "system_id",
            "model_id",
            "salt",
            "frac_flagged_min",
            "frac_flagged_max",
        ),
        heavy=AUDIT_FRAME_FIELDS,
    ),
}


def fields_pattern(spec: CollectionSpec) -> str:
    """Anchored regex of a valid ``_fields`` value of ``spec``: comma-separated known fields (dotted sub-paths)."""
    top = _alternation(spec.fields) if spec.fields is not None else r"[A-Za-z][A-Za-z0-9_]*"
    item = top + _SUBPATH
    return rf"^{item}(?:,{item})*$"


def sort_pattern(spec: CollectionSpec) -> str:
    """Anchored regex of a valid ``_sort_fields`` value: up to :data:`MAX_SORT_KEYS` sortable fields, ``-`` = desc."""
    item = "-?" + _alternation(spec.sortable)
    return rf"^{item}(?:,{item}){{0,{MAX_SORT_KEYS - 1}}}$"
