"""Response schemas of the API, for the OpenAPI document (responses are built directly, not through these).

Documents may be projected (``_fields``), so every document field is optional here; nested objects are plain
objects. The summary schema lists every headline property ``P`` of
:data:`~electrodb.documents.registry.SUMMARY_PROPERTIES` with ``P_err``, ``P_status`` (an enumeration of
:data:`~electrodb.analysis.convergence.STATUSES`), ``P_reason``, ``P_criterion``, ``P_n_runs``, ``P_n_eff``,
``P_t_equil_ps``, ``exp_P``, ``exp_P_source``, and the model-trust fields (``model_trust``, an enumeration of
:data:`~electrodb.documents.committee.TRUST_STATUSES`, its reason, ``frac_flagged``, ``sigma_F_max_p95`` …).
"""

from __future__ import annotations

import types
import typing
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from electrodb.analysis.convergence import STATUSES
from electrodb.documents.committee import TRUST_STATUSES
from electrodb.documents.properties import ElectrolyteSummary
from electrodb.documents.registry import SUMMARY_PROPERTIES
from electrodb.store.query import SUMMARY_EXTRA_FIELDS

__all__ = ["ErrorResponse", "FramesResponse", "ListMeta", "error_responses", "list_response", "one_response"]

_SCALARS = (str, int, float, bool)
_STATUS = Literal[STATUSES]  # type: ignore[valid-type]
_TRUST = Literal[TRUST_STATUSES]  # type: ignore[valid-type]
_STATUS_TEXT = (
    "converged (a result), unconverged (computed, a criterion failed: never a result), insufficient (not enough "
    "data: the value and its error are null) or input (taken from a correlation or an input, not computed)"
)


class ErrorBody(BaseModel):
    status: int = Field(description="HTTP status")
    message: str = Field(description="what went wrong, naming the parameter")
    detail: Any = Field(None, description="machine-readable detail: {parameter, allowed, ...}")


class ErrorResponse(BaseModel):
    """Shape of every 4xx/5xx answer."""

    error: ErrorBody


class ListMeta(BaseModel):
    """Paging metadata of list answers (emmet-api / mp-api style)."""

    model_config = ConfigDict(extra="allow")

    total_doc: int = Field(description="documents matching the filters (all pages)")
    total: int = Field(description="deprecated alias of total_doc", json_schema_extra={"deprecated": True})
    limit: int = Field(description="page size used")
    skip: int = Field(description="documents skipped")
    max_limit: int = Field(description="largest accepted page size")
    api_version: str
    warnings: list[str] = Field(default_factory=list, description="deprecated parameters used, empty ranges, ...")


def _lenient(annotation: Any) -> Any:
    """An optional JSON-level type for a schema annotation (nested models → objects, datetimes → strings)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
    args = tuple(a for a in args if a is not type(None))
    if args and all(a in _SCALARS for a in args):
        inner = args[0] if len(args) == 1 else typing.Union[args]  # noqa: UP007
        return inner | None
    if args and all(a in (datetime, date) for a in args):
        return str | None
    if len(args) == 1 and typing.get_origin(args[0]) in (list, tuple):
        return list[Any] | None
    if len(args) == 1 and (typing.get_origin(args[0]) is dict or isinstance(args[0], type)):
        return dict[str, Any] | None
    return Any


def _summary_model() -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, info in ElectrolyteSummary.model_fields.items():
        fields[name] = (_lenient(info.annotation), Field(None, description=info.description))
    fields["model_trust"] = (
        _TRUST | None,
        Field(None, description=ElectrolyteSummary.model_fields["model_trust"].description),
    )
    fields["committee_name"] = (str | None, Field(None, description="readable name of the committee in committee_id"))
    for prop, (unit, text) in SUMMARY_PROPERTIES.items():
        u = f" ({unit})" if unit else ""
        fields.setdefault(
            prop, (float | None, Field(None, description=f"{text}{u}; null when not computed or insufficient"))
        )
        fields.setdefault(f"{prop}_err", (float | None, Field(None, description=f"standard error of {prop}{u}")))
        fields.setdefault(
            f"{prop}_status", (_STATUS | None, Field(None, description=f"convergence status of {prop}: {_STATUS_TEXT}"))
        )
        fields.setdefault(
            f"{prop}_reason",
            (str | None, Field(None, description="why not converged, or where an input came from ('' if converged)")),
        )
        fields.setdefault(f"{prop}_criterion", (str | None, Field(None, description="criterion applied")))
        fields.setdefault(f"{prop}_n_runs", (int | None, Field(None, description=f"runs merged into {prop}")))
        fields.setdefault(
            f"{prop}_n_eff",
            (
                float | None,
                Field(
                    None,
                    description=f"effectively independent samples behind {prop}_err, summed over the merged runs "
                    "(null when a run did not record it)",
                ),
            ),
        )
        fields.setdefault(
            f"{prop}_t_equil_ps",
            (
                float | None,
                Field(None, description="largest equilibration cut (ps) among the merged runs (null when unknown)"),
            ),
        )
        fields.setdefault(
            f"{prop}_needs_ps",
            (
                float | None,
                Field(
                    None,
                    description=f"more production (ps) {prop} needs to converge, from how its failed criteria scale "
                    "with run length (0 when converged; null when not estimated or when running longer cannot "
                    "make it converge, as its reason says)",
                ),
            ),
        )
        fields.setdefault(f"exp_{prop}", (float | None, Field(None, description=f"experimental {prop}{u}")))
        fields.setdefault(f"exp_{prop}_source", (str | None, Field(None, description="source of the experiment")))
    for name in SUMMARY_EXTRA_FIELDS:
        fields.setdefault(name, (float | None if name == "density_input" else str | None, None))
    return create_model(  # type: ignore[call-overload]
        "ElectrolyteSummaryOut", __config__=ConfigDict(extra="allow"), **fields
    )


SummaryOut = _summary_model()


class Document(BaseModel):
    model_config = ConfigDict(extra="allow")


def list_response(name: str) -> type[BaseModel]:
    item = SummaryOut if name == "electrolytes" else Document
    return create_model(  # type: ignore[call-overload]
        f"{name.capitalize()}List", data=(list[item], ...), meta=(ListMeta, ...)
    )


def one_response(name: str) -> type[BaseModel]:
    item = SummaryOut if name == "electrolytes" else Document
    return create_model(f"{name.capitalize()}One", data=(item, ...))  # type: ignore[call-overload]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error codes, all in the :class:`ErrorResponse` shape."""
    text = {
        404: "no such document / no data for this request",
        422: "invalid parameter (the message names it)",
        500: "internal error (only the exception type is given)",
        503: "database unreachable",
    }
    return {c: {"model": ErrorResponse, "description": text.get(c, "error")} for c in codes}


class EncodedArray(BaseModel):
    """A numpy array: ``zlib``-compressed little-endian bytes in base64 (``electrodb.store.frames.decode_array``)."""

    dtype: str = Field(description="numpy dtype string, e.g. <f4")
    shape: list[int]
    zb64: str = Field(description="base64 of the zlib-compressed C-order bytes")


class FramesBlock(BaseModel):
    start: int = Field(description="index of the first frame served")
    stop: int = Field(description="one past the last frame served")
    n_frames: int
    positions: EncodedArray = Field(description="(n_frames, n_atoms, 3) float32, Å, unwrapped")
    cells: EncodedArray = Field(description="(n_frames, 3, 3) float32, Å, lattice vectors as rows")
    times_ps: EncodedArray = Field(description="(n_frames,) float64, ps")
    potential_energy_eV: EncodedArray = Field(description="(n_frames,) float64, eV; NaN where not recorded")
    temperature_K: EncodedArray = Field(description="(n_frames,) float64, K; NaN where not recorded")


class FramesData(BaseModel):
    trajectory: Document = Field(description="the trajectory document, with its per-atom lists")
    frames: FramesBlock


class FramesMeta(BaseModel):
    model_config = ConfigDict(extra="allow")

    total_doc: int = Field(description="frames of the trajectory")
    skip: int
    limit: int = Field(description="frames this answer could carry")
    max_limit: int = Field(description="most frames one answer carries for this trajectory")
    max_frame_atoms: int = Field(description="bound on frames × atoms per answer")
    api_version: str
    warnings: list[str] = Field(default_factory=list)


class FramesResponse(BaseModel):
    """``GET /trajectories/{trajectory_id}/frames``: metadata and one page of frames."""

    data: FramesData
    meta: FramesMeta
