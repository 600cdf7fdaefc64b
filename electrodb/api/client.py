"""Python client of the ElectroDB HTTP API (httpx): paging in chunks, typed documents, retries.

Example
-------
>>> from electrodb.api.client import ElectroDBClient
>>> db = ElectroDBClient("http://127.0.0.1:8000")                               # doctest: +SKIP
>>> docs = db.search(salt="NaCl", molality=(1, 3), D_cation_status="converged")   # doctest: +SKIP
>>> docs[0].D_cation, docs[0].D_cation_status                                     # doctest: +SKIP
>>> rows = db.search(salt="NaCl", fields=["molality", "D_cation"], as_dict=True)  # doctest: +SKIP
>>> df = db.search(salt="LiCl", as_dataframe=True)                                # doctest: +SKIP
>>> rdf = db.get_rdf(docs[0].electrolyte_id)                                      # doctest: +SKIP

Documents come back as the project's pydantic models (:class:`~electrodb.documents.properties.ElectrolyteSummary`
for summaries; ``StructureDoc`` … for the property collections); with ``fields=`` they are partial
(built with ``model_construct``: fields not requested are absent). ``as_dict=True`` gives plain dicts,
``as_dataframe=True`` a pandas DataFrame.

Every headline property ``P`` of a summary comes with ``P_err``, ``P_status`` (``converged``, ``unconverged``,
``insufficient`` or ``input``: taken from a correlation or an input, not computed), ``P_reason``, ``P_n_eff``
(effectively independent samples behind ``P_err``) and ``P_t_equil_ps``. A summary property whose status is
``insufficient`` comes back with ``P`` and ``P_err`` None, also from a server or database older than that contract.

Beside the statuses, a summary carries the model-trust verdict of committee audits of its runs (``model_trust``:
``trusted``, ``extrapolating``, ``insufficient`` or ``unaudited``; ``model_trust_reason``, ``frac_flagged``,
``sigma_F_max_p95``, ``committee_id``, ``refine_round``); :meth:`ElectroDBClient.search` filters on it, and leaves
out results a refined committee's model superseded unless ``include_superseded=True``.
:meth:`~ElectroDBClient.committees` and :meth:`~ElectroDBClient.audits` read the committees and their audits.

Connection errors and 5xx answers are retried ``retries`` times with exponential back-off; a 4xx raises
:class:`ElectroDBAPIError` naming the offending parameter. In tests, pass an existing ``httpx.Client``-like
object (e.g. ``fastapi.testclient.TestClient(app)``) as ``client=``; a custom ``transport=``
(``httpx.MockTransport``) also works.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from electrodb.api.client_query import Range, Values, data_frame, joined, search_params
from electrodb.api.client_trust import TrustQueries
from electrodb.documents.properties import withhold_insufficient
from electrodb.documents.registry import COLLECTIONS as REGISTRY
from electrodb.documents.registry import PROPERTY_COLLECTIONS

__all__ = ["ElectroDBAPIError", "ElectroDBClient", "ElectroDBConnectionError", "ElectroDBWarning"]

PAGE_SIZE = 1000  # the API's maximum _limit
RETRY_STATUSES = frozenset({500, 502, 503, 504})


class ElectroDBAPIError(RuntimeError):
    """An error answer of the API (``{"error": {"status", "message", "detail"}}``).

    Attributes
    ----------
    status, message, detail
        As sent by the server.
    parameter
        The request parameter the server rejected, when it names one (4xx).
    """

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        self.status = status
        self.message = message
        self.detail = detail
        self.parameter = detail.get("parameter") if isinstance(detail, dict) else None
        where = f" [parameter {self.parameter!r}]" if self.parameter and self.parameter not in message else ""
        super().__init__(f"HTTP {status}: {message}{where}")


class ElectroDBConnectionError(ConnectionError):
    """The server could not be reached (after the retries)."""


class ElectroDBWarning(UserWarning):
    """A warning sent by the server in ``meta.warnings`` (deprecated parameters, empty ranges, ...)."""


#: The collections whose documents the client returns typed (the registry's schemas).
_MODELS: dict[str, type[BaseModel]] = {
    name: REGISTRY[name].document  # type: ignore[misc]
    for name in ("electrolytes", *PROPERTY_COLLECTIONS, "trajectories", "committees", "audits")
}


def to_model(collection: str, doc: dict[str, Any], partial: bool) -> Any:
    """``doc`` as the collection's pydantic model (``model_construct`` when partial or not schema-valid)."""
    model = _MODELS.get(collection)
    if model is None:
        return doc
    if partial:
        return model.model_construct(**doc)
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        warnings.warn(
            f"{collection} document {doc.get(next(iter(doc), ''), '?')!r} does not match {model.__name__} "
            f"({exc.error_count()} errors); returned unvalidated",
            ElectroDBWarning,
            stacklevel=3,
        )
        return model.model_construct(**doc)


class ElectroDBClient(TrustQueries):
    """Client of an ElectroDB API server.

    Parameters
    ----------
    base_url
        Server address, e.g. ``"http://127.0.0.1:8000"`` (ignored when ``client`` is given).
    timeout
        Seconds per request.
    transport
        Optional httpx transport for the internal ``httpx.Client``.
    client
        An existing ``httpx.Client``-compatible object to send requests with (e.g. a Starlette
        ``TestClient``); the caller keeps ownership of it.
    retries
        Extra attempts after a connection error or a 5xx answer.
    backoff
        Seconds before the first retry; doubled at every further retry.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        client: Any = None,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self._owns_client = client is None
        self._http = (
            client
            if client is not None
            else httpx.Client(
                base_url=base_url.rstrip("/"), timeout=timeout, transport=transport, headers={"Accept-Encoding": "gzip"}
            )
        )
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)

    # -------------------------------------------------------------------------------- plumbing

    def close(self) -> None:
        if self._owns_client:
            self._http.close()

    def __enter__(self) -> ElectroDBClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, path: str, params: dict[str, Any] | None) -> httpx.Response:
        """GET with retries on connection errors and 5xx (exponential back-off)."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.get(path, params=clean)
            except httpx.TransportError as exc:
                if last:
                    raise ElectroDBConnectionError(
                        f"cannot reach the ElectroDB API for {path} after {attempt + 1} attempt(s): {exc}"
                    ) from exc
            else:
                if response.status_code not in RETRY_STATUSES or last:
                    return response
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        body = self._decode(self._send(path, params))
        meta = body.get("meta") if isinstance(body, dict) else None
        for text in (meta or {}).get("warnings") or []:
            warnings.warn(f"ElectroDB API: {text}", ElectroDBWarning, stacklevel=3)
        return body

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                err = response.json()["error"]
                status, message, detail = (
                    err.get("status", response.status_code),
                    err.get("message", ""),
                    err.get("detail"),
                )
            except (ValueError, KeyError, TypeError):
                raise ElectroDBAPIError(response.status_code, response.text[:500]) from None
            raise ElectroDBAPIError(status, message, detail)
        return response.json()

    # -------------------------------------------------------------------------------- queries

    def pages(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        limit: int | None = None,
        chunk_size: int = PAGE_SIZE,
        num_chunks: int | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Chunks of a list route (``/electrolytes``, ``/structure``, …) until ``limit`` docs, ``num_chunks``
        chunks or the end."""
        if not 1 <= chunk_size <= PAGE_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {PAGE_SIZE}, got {chunk_size}")
        params = dict(params or {})
        skip, chunks = 0, 0
        while (limit is None or skip < limit) and (num_chunks is None or chunks < num_chunks):
            size = chunk_size if limit is None else min(chunk_size, limit - skip)
            body = self._get(path, {**params, "_limit": size, "_skip": skip})
            data = body["data"]
            chunks += 1
            if data:
                yield data
            skip += len(data)
            meta = body.get("meta") or {}
            total = meta.get("total_doc", meta.get("total", 0))
            if len(data) < size or skip >= total:
                return

    def search(
        self,
        salt: Values = None,
        molality: Range = None,
        temperature: Range = None,
        *,
        cation: Values = None,
        anion: Values = None,
        model_id: Values = None,
        campaign: Values = None,
        model_trust: Values = None,
        include_superseded: bool = False,
        fields: Sequence[str] | str | None = None,
        all_fields: bool = False,
        sort: Sequence[str] | str | None = None,
        limit: int | None = None,
        chunk_size: int = PAGE_SIZE,
        num_chunks: int | None = None,
        as_dict: bool = False,
        as_dataframe: bool = False,
        page_size: int | None = None,
        **filters: Any,
    ) -> Any:
        """Electrolyte summaries matching the filters, fetched in chunks.

        Parameters
        ----------
        salt, cation, anion, model_id, campaign
            One value or a list of values (any matches); salt and ion names are canonicalised by the server
            (``"nacl"`` finds ``NaCl``).
        molality, temperature
            ``(min, max)`` in mol/kg and K (``None`` for an open end) or a single value (±1e-6).
        model_trust
            Model-trust verdicts (``"trusted"``, ``["trusted", "insufficient"]``): ``trusted``, ``extrapolating``,
            ``insufficient``, ``unaudited``; an unknown one is refused with the close matches.
        include_superseded
            Also results a refined committee's model superseded (``superseded_by`` set), left out by default.
        fields
            Fields to return (``electrolyte_id`` is always included); documents are then partial.
        all_fields
            Every field of the documents (sent as ``_all_fields=true``; overrides ``fields``, and the server then
            warns that ``fields`` was ignored).
        sort
            ``"-D_cation"`` or ``["salt", "-molality"]`` (sent as ``_sort_fields``); ``electrolyte_id`` breaks
            ties, so chunks are stable.
        limit
            Maximum number of documents (``None``: all).
        chunk_size, num_chunks
            Documents per request (≤ 1000) and the most requests to make (``None``: as many as needed).
        as_dict, as_dataframe
            Plain dicts, or a pandas DataFrame, instead of :class:`ElectrolyteSummary` models. The DataFrame
            has the same columns whether the search matched many documents or none: the requested ``fields``
            (with ``electrolyte_id`` first), else the summaries' known fields
            (:func:`~electrodb.api.client_query.frame_columns`).
        page_size
            Deprecated name of ``chunk_size``.
        **filters
            Per headline property ``P``: ``P=(min, max)``, ``P_min=``, ``P_max=``, ``P_status="converged"``
            (or a list of statuses: ``converged``, ``unconverged``, ``insufficient``, ``input``);
            ``electrolyte_ids=[...]``; model trust: ``frac_flagged=(min, max)``, ``sigma_F_max_p95=(min, max)``
            (eV/Å; or ``_min``/``_max``), ``committee_id=``, ``refine_round=`` (an integer or a list).

        Raises
        ------
        TypeError
            An unknown keyword (named in the message).
        ElectroDBAPIError
            The server refused a parameter (``.parameter`` names it).
        """
        if page_size is not None:
            warnings.warn("page_size is deprecated; use chunk_size", DeprecationWarning, stacklevel=2)
            chunk_size = page_size
        named = dict(
            salt=salt,
            cation=cation,
            anion=anion,
            model_id=model_id,
            campaign=campaign,
            model_trust=model_trust,
            include_superseded=include_superseded,
        )
        filters = {**named, "molality": molality, "temperature": temperature, **filters}
        params = search_params(filters, fields, sort, all_fields)
        docs = [
            withhold_insufficient(d)
            for chunk in self.pages("/electrolytes", params, limit=limit, chunk_size=chunk_size, num_chunks=num_chunks)
            for d in chunk
        ]
        if as_dataframe:
            return data_frame("electrolytes", docs, fields, all_fields)
        if as_dict:
            return docs
        return [to_model("electrolytes", d, partial=bool(fields) and not all_fields) for d in docs]

    def count(self, salt: Values = None, molality: Range = None, temperature: Range = None, **kwargs: Any) -> int:
        """Number of summaries matching the same filters as :meth:`search`."""
        params = search_params({"salt": salt, "molality": molality, "temperature": temperature, **kwargs})
        meta = self._get("/electrolytes", {**params, "_limit": 0})["meta"]
        return int(meta.get("total_doc", meta.get("total", 0)))

    def get(
        self,
        electrolyte_id: str,
        fields: Sequence[str] | str | None = None,
        as_dict: bool = False,
        all_fields: bool = False,
    ) -> Any:
        """One electrolyte summary (an :class:`ElectrolyteSummary`, or a dict with ``as_dict``); ``fields`` and
        ``all_fields`` as in :meth:`search`."""
        params = {"_fields": joined(fields) if fields else None, "_all_fields": "true" if all_fields else None}
        doc = withhold_insufficient(self._get(f"/electrolytes/{electrolyte_id}", params)["data"])
        return doc if as_dict else to_model("electrolytes", doc, partial=bool(fields) and not all_fields)

    def get_rdf(
        self, electrolyte_id: str, pairs: Sequence[str] | None = None, max_points: int | None = None
    ) -> dict[str, Any]:
        """g(r), n(r) and shells of each trajectory of a summary: ``{"trajectories": [{"rdf": {pair: …}}]}``."""
        return self._get(
            f"/electrolytes/{electrolyte_id}/rdf",
            {"pairs": ",".join(pairs) if pairs else None, "max_points": max_points},
        )["data"]

    def get_msd(
        self, electrolyte_id: str, species: Sequence[str] | None = None, max_points: int | None = None
    ) -> dict[str, Any]:
        """MSDs and diffusion fits of each trajectory of a summary."""
        return self._get(
            f"/electrolytes/{electrolyte_id}/msd",
            {"species": ",".join(species) if species else None, "max_points": max_points},
        )["data"]

    def query(
        self,
        collection: str,
        limit: int | None = None,
        *,
        fields: Sequence[str] | str | None = None,
        all_fields: bool = False,
        chunk_size: int = PAGE_SIZE,
        num_chunks: int | None = None,
        as_dict: bool = False,
        as_dataframe: bool = False,
        **params: Any,
    ) -> Any:
        """All documents of a list route (``structure``, ``transport``, ``trajectories``, ``thermo``, …).

        Property collections and trajectories come back as their pydantic models unless ``as_dict`` or
        ``as_dataframe`` (columns as in :meth:`search`); the others (``models``, ``campaigns``, ``thermo``,
        ``solvation``) as dicts. List values are sent as comma-separated lists; ``fields`` and ``all_fields`` as
        in :meth:`search`.
        """
        if not collection.isidentifier():
            raise ValueError(f"bad collection name {collection!r}")
        sent = {k: joined(v) if isinstance(v, (list, tuple)) else v for k, v in params.items()}
        if fields:
            sent["_fields"] = joined(fields)
        if all_fields:
            sent["_all_fields"] = "true"
        docs: Iterable[dict[str, Any]] = (
            d
            for chunk in self.pages(f"/{collection}", sent, limit=limit, chunk_size=chunk_size, num_chunks=num_chunks)
            for d in chunk
        )
        if collection == "electrolytes":
            docs = (withhold_insufficient(d) for d in docs)
        if as_dataframe:
            return data_frame(collection, list(docs), fields, all_fields)
        if as_dict:
            return list(docs)
        return [to_model(collection, d, partial=bool(fields) and not all_fields) for d in docs]

    def get_trajectory(
        self,
        trajectory_id: str,
        as_: str = "ase",
        *,
        start: int = 0,
        stop: int | None = None,
        chunk_frames: int | None = None,
    ) -> Any:
        """One stored trajectory's frames, paged from ``GET /trajectories/{id}/frames``.

        Parameters
        ----------
        trajectory_id
            The trajectory's id.
        as_
            ``"ase"``: a list of ASE ``Atoms`` (unwrapped positions in Å, cell, ``arrays["role"]``,
            ``arrays["mol_id"]``, ``info["time_ps"]``, ``info["temperature_K"]``, potential energy as the
            calculator's energy when recorded); ``"mdanalysis"``: an in-memory MDAnalysis ``Universe`` (water
            ``resname SOL``, ``name OW``/``HW1``/``HW2``, segment ``WAT``; ions by name, ``LI``, ``CL``, segments
            ``CAT``/``ANI``; resid = ``mol_id + 1``; ``ts.time`` in ps); ``"arrays"``: the
            :class:`~electrodb.store.frames.TrajectoryArrays`.
        start, stop
            Frame window (``stop=None``: to the end).
        chunk_frames
            Frames per request (default: the server's bound, ``meta.max_limit``).
        """
        # the frame decoders and the ASE/MDAnalysis converters import maggma, ASE and MDAnalysis: only here, so that
        # the client stays an httpx + pydantic import for users who only query
        from electrodb.api.client_frames import fetch_frames
        from electrodb.io import export as ex

        if as_ not in ("ase", "mdanalysis", "arrays"):
            raise ValueError(f"as_ must be 'ase', 'mdanalysis' or 'arrays', got {as_!r}")
        arrays = fetch_frames(self._get, f"/trajectories/{trajectory_id}/frames", start, stop, chunk_frames)
        if as_ == "arrays":
            return arrays
        return ex.arrays_universe(arrays) if as_ == "mdanalysis" else ex.ase_frames(arrays)

    def health(self) -> dict[str, Any]:
        return self._get("/health")

    def export(self, path: str | Path, format: str = "csv", with_arrays: bool = False, **filters: Any) -> Path:
        """Stream ``GET /export`` (CSV or JSON lines) to ``path``; filters as in :meth:`search` (``P_min=`` …)."""
        path = Path(path)
        params = {
            "format": format,
            "with_arrays": str(with_arrays).lower(),
            **{k: joined(v) if isinstance(v, (list, tuple)) else v for k, v in filters.items() if v is not None},
        }
        for attempt in range(self.retries + 1):
            try:
                with self._http.stream("GET", "/export", params=params) as response:
                    if response.status_code in RETRY_STATUSES and attempt < self.retries:
                        time.sleep(self.backoff * 2**attempt)
                        continue
                    if response.status_code >= 400:
                        response.read()
                        self._decode(response)
                    with path.open("wb") as fh:
                        for chunk in response.iter_bytes():
                            fh.write(chunk)
                return path
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise ElectroDBConnectionError(f"cannot reach the ElectroDB API for /export: {exc}") from exc
                time.sleep(self.backoff * 2**attempt)
        return path
