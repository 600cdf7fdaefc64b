"""Python client of the ElectroDB HTTP API (httpx), with transparent pagination.

Example
-------
>>> from electrodb.client import ElectroDBClient
>>> db = ElectroDBClient("http://127.0.0.1:8000")                               # doctest: +SKIP
>>> rows = db.search(salt="NaCl", molality=(1, 3), temperature=(290, 310),
...                  D_cation=(1.0, None), fields=["salt", "molality", "D_cation"])  # doctest: +SKIP
>>> df = db.search(salt="LiCl", as_dataframe=True)                                # doctest: +SKIP
>>> rdf = db.get_rdf(rows[0]["electrolyte_id"])                                   # doctest: +SKIP

In tests, pass an existing ``httpx.Client``-like object (e.g. ``fastapi.testclient.TestClient(app)``) as
``client=``; a custom ``transport=`` (``httpx.MockTransport``, ``httpx.HTTPTransport``) also works.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx

from electrodb.builders.documents import SUMMARY_PROPERTIES

__all__ = ["ElectroDBAPIError", "ElectroDBClient"]

PAGE_SIZE = 1000  # the API's maximum _limit

Range = tuple[float | None, float | None] | list[float | None] | float | int | None


class ElectroDBAPIError(RuntimeError):
    """An error answer of the API (``{"error": {"status", "message", "detail"}}``)."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.detail = detail


def _range_params(name: str, value: Range, tolerance: float = 1e-6) -> dict[str, float]:
    """``(lo, hi)`` → ``{name_min: lo, name_max: hi}`` (``None`` ends open); a number means ±``tolerance``."""
    if value is None:
        return {}
    if isinstance(value, (int, float)):
        return {f"{name}_min": float(value) - tolerance, f"{name}_max": float(value) + tolerance}
    lo, hi = value
    out = {}
    if lo is not None:
        out[f"{name}_min"] = float(lo)
    if hi is not None:
        out[f"{name}_max"] = float(hi)
    return out


class ElectroDBClient:
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
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        client: Any = None,
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

    # -------------------------------------------------------------------------------- plumbing

    def close(self) -> None:
        if self._owns_client:
            self._http.close()

    def __enter__(self) -> ElectroDBClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self._http.get(path, params={k: v for k, v in (params or {}).items() if v is not None})
        return self._decode(response)

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                err = response.json()["error"]
                raise ElectroDBAPIError(
                    err.get("status", response.status_code), err.get("message", ""), err.get("detail")
                )
            except (ValueError, KeyError, TypeError):
                raise ElectroDBAPIError(response.status_code, response.text[:500]) from None
        return response.json()

    # -------------------------------------------------------------------------------- queries

    @staticmethod
    def _search_params(
        salt: str | None,
        cation: str | None,
        anion: str | None,
        molality: Range,
        temperature: Range,
        model_id: str | None,
        campaign: str | None,
        fields: Sequence[str] | str | None,
        sort: Sequence[str] | str | None,
        property_ranges: dict[str, Any],
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "salt": salt,
            "cation": cation,
            "anion": anion,
            "model_id": model_id,
            "campaign": campaign,
        }
        params.update(_range_params("molality", molality))
        params.update(_range_params("temperature", temperature))
        for key, value in property_ranges.items():
            base = key.removesuffix("_min").removesuffix("_max")
            if base not in SUMMARY_PROPERTIES:
                raise TypeError(f"unknown property {key!r}; properties are {', '.join(SUMMARY_PROPERTIES)}")
            if key == base:
                params.update(_range_params(key, value))
            elif value is not None:
                params[key] = float(value)
        if fields:
            params["_fields"] = fields if isinstance(fields, str) else ",".join(fields)
        if sort:
            params["_sort"] = sort if isinstance(sort, str) else ",".join(sort)
        return params

    def pages(
        self, path: str, params: dict[str, Any] | None = None, limit: int | None = None, page_size: int = PAGE_SIZE
    ) -> Iterable[list[dict[str, Any]]]:
        """Pages of a list route (``/electrolytes``, ``/structure``, …) until ``limit`` docs or the end."""
        params = dict(params or {})
        skip = 0
        while limit is None or skip < limit:
            size = page_size if limit is None else min(page_size, limit - skip)
            body = self._get(path, {**params, "_limit": size, "_skip": skip})
            data = body["data"]
            if data:
                yield data
            skip += len(data)
            if len(data) < size or skip >= body["meta"]["total"]:
                return

    def search(
        self,
        salt: str | None = None,
        molality: Range = None,
        temperature: Range = None,
        *,
        cation: str | None = None,
        anion: str | None = None,
        model_id: str | None = None,
        campaign: str | None = None,
        fields: Sequence[str] | str | None = None,
        sort: Sequence[str] | str | None = None,
        limit: int | None = None,
        as_dataframe: bool = False,
        page_size: int = PAGE_SIZE,
        **property_ranges: Any,
    ) -> Any:
        """Electrolyte summaries matching the filters, all pages fetched (or the first ``limit``).

        Parameters
        ----------
        salt, cation, anion, model_id, campaign
            Exact matches (salt and ion names are canonicalised by the server: ``"nacl"`` finds ``NaCl``).
        molality, temperature
            ``(min, max)`` in mol/kg and K (``None`` for an open end) or a single value (±1e-6).
        fields
            Fields to return (``electrolyte_id`` is always included).
        sort
            ``"-D_cation"`` or ``["salt", "-molality"]``; ``electrolyte_id`` breaks ties, so pages are stable.
        limit
            Maximum number of documents (``None``: all).
        as_dataframe
            Return a pandas DataFrame instead of a list of dicts.
        **property_ranges
            ``D_cation=(1.0, 1.5)``, ``cn_cation_O=(None, 6)``, or ``D_cation_min=1.0`` for any headline property.
        """
        params = self._search_params(
            salt, cation, anion, molality, temperature, model_id, campaign, fields, sort, property_ranges
        )
        docs = [d for page in self.pages("/electrolytes", params, limit=limit, page_size=page_size) for d in page]
        if as_dataframe:
            import pandas as pd

            return pd.DataFrame(docs)
        return docs

    def count(self, salt: str | None = None, molality: Range = None, temperature: Range = None, **kwargs: Any) -> int:
        """Number of summaries matching the same filters as :meth:`search`."""
        params = self._search_params(
            salt,
            kwargs.pop("cation", None),
            kwargs.pop("anion", None),
            molality,
            temperature,
            kwargs.pop("model_id", None),
            kwargs.pop("campaign", None),
            None,
            None,
            kwargs,
        )
        return int(self._get("/electrolytes", {**params, "_limit": 0})["meta"]["total"])

    def get(self, electrolyte_id: str, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """One electrolyte summary."""
        params = {"_fields": ",".join(fields)} if fields else None
        return self._get(f"/electrolytes/{electrolyte_id}", params)["data"]

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

    def query(self, collection: str, limit: int | None = None, **params: Any) -> list[dict[str, Any]]:
        """All documents of a list route (``structure``, ``transport``, ``trajectories``, ``thermo``, …)."""
        if not collection.isidentifier():
            raise ValueError(f"bad collection name {collection!r}")
        return [d for page in self.pages(f"/{collection}", params, limit=limit) for d in page]

    def health(self) -> dict[str, Any]:
        return self._get("/health")

    def export(self, path: str | Path, format: str = "csv", with_arrays: bool = False, **filters: Any) -> Path:
        """Stream ``GET /export`` (CSV or JSON lines) to ``path``; filters as in ``GET /electrolytes``."""
        path = Path(path)
        params = {
            "format": format,
            "with_arrays": str(with_arrays).lower(),
            **{k: v for k, v in filters.items() if v is not None},
        }
        with self._http.stream("GET", "/export", params=params) as response:
            if response.status_code >= 400:
                response.read()
                self._decode(response)
            with path.open("wb") as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
        return path
