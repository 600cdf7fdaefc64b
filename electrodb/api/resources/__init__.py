"""The routes of the API, one resource class per family (maggma's API resource pattern).

Each resource holds what its routes need (the :class:`~electrodb.api.database.Database`, the settings) and
adds them with ``register(router)``; :func:`electrodb.api.app.create_app` registers, in this order: the
explorer, the meta routes, the electrolyte summaries, the per-trajectory property collections (with the
summaries' ``/rdf`` and ``/msd``), trajectories and frames, models and campaigns, committees and their audits,
thermodynamics (with the experimental activity reference) and the table export; then the interactive
documentation (``/docs``, ``/redoc``: :mod:`~electrodb.api.resources.docs`).
"""

from __future__ import annotations

from electrodb.api.resources.base import CollectionResource, Resource
from electrodb.api.resources.committees import CommitteeResource
from electrodb.api.resources.docs import DocsResource
from electrodb.api.resources.explorer import ExplorerResource
from electrodb.api.resources.export import ExportResource
from electrodb.api.resources.meta import MetaResource
from electrodb.api.resources.models import ModelResource
from electrodb.api.resources.properties import PropertyResource
from electrodb.api.resources.summaries import SummaryResource
from electrodb.api.resources.thermo import ThermoResource
from electrodb.api.resources.trajectories import TrajectoryResource

__all__ = [
    "CollectionResource",
    "CommitteeResource",
    "DocsResource",
    "ExplorerResource",
    "ExportResource",
    "MetaResource",
    "ModelResource",
    "PropertyResource",
    "Resource",
    "SummaryResource",
    "ThermoResource",
    "TrajectoryResource",
]
