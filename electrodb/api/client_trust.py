"""The client's queries of committees and their audits (``GET /committees``, ``GET /audits``): a mixin of
:class:`~electrodb.api.client.ElectroDBClient`, which supplies :meth:`query`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from electrodb.api.client_query import Values, joined
from electrodb.documents.committee import AuditDocument

__all__ = ["TrustQueries"]


def _given(params: dict[str, Any]) -> dict[str, Any]:
    """The filters that were given (``None`` left out), lists as the API's comma-separated lists."""
    return {k: joined(v) for k, v in params.items() if v is not None}


class TrustQueries:
    """``committees()`` and ``audits()`` of the client (``self.query`` is :meth:`ElectroDBClient.query`)."""

    def committees(
        self,
        committee_id: Values = None,
        *,
        parent_id: Values = None,
        refine_round: int | Sequence[int] | None = None,
        fields: Sequence[str] | str | None = None,
        limit: int | None = None,
        as_dict: bool = False,
        as_dataframe: bool = False,
    ) -> Any:
        """The registered committees (``GET /committees``), superseded ones included (their ``superseded_by``
        names the refined committee): :class:`~electrodb.documents.committee.CommitteeDocument` models, dicts with
        ``as_dict`` or a DataFrame with ``as_dataframe`` (the same columns when nothing matched).

        Parameters
        ----------
        committee_id, parent_id
            One id or several (``committee:…``); ``parent_id``: committees refined from it.
        refine_round
            Refine round(s) (0: a first committee).
        fields, limit, as_dict, as_dataframe
            As in :meth:`query`.
        """
        params = {"committee_id": committee_id, "parent_id": parent_id, "refine_round": joined(refine_round)}
        return self.query(
            "committees", limit, fields=fields, as_dict=as_dict, as_dataframe=as_dataframe, **_given(params)
        )

    def audits(
        self,
        trajectory_id: Values = None,
        committee_id: Values = None,
        system_id: Values = None,
        *,
        model_id: Values = None,
        per_frame: bool = False,
        fields: Sequence[str] | str | None = None,
        limit: int | None = None,
        as_dict: bool = False,
        as_dataframe: bool = False,
    ) -> Any:
        """Committee audits of trajectories (``GET /audits``): per system ``frac_flagged``, ``sigma_F_max_p95``,
        the ``worst`` frames and the ``verdict``, as :class:`~electrodb.documents.committee.AuditDocument` models,
        dicts with ``as_dict`` or a DataFrame with ``as_dataframe`` (the same columns when nothing matched).

        Parameters
        ----------
        trajectory_id, committee_id, system_id, model_id
            One id or several (``model_id``: the model that drove the trajectory).
        per_frame
            Also the per-frame lists (``frames``, ``times_ps``, ``sigma_F_max``, ``sigma_F_mean``, ``sigma_F_p95``,
            ``sigma_E_meV_per_atom``), which the server leaves out unless ``_fields`` names them (models built
            without them hold empty lists there): every field of the schema is asked for by name; ignored with
            ``fields``, which names what to get.
        fields, limit, as_dict, as_dataframe
            As in :meth:`query`.
        """
        params = {"trajectory_id": trajectory_id, "committee_id": committee_id, "system_id": system_id}
        if per_frame and not fields:
            fields = list(AuditDocument.model_fields)
        return self.query(
            "audits",
            limit,
            fields=fields,
            as_dict=as_dict,
            as_dataframe=as_dataframe,
            **_given({**params, "model_id": model_id}),
        )
