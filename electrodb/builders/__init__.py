"""maggma builders: stored trajectories -> property documents -> summaries (-> thermodynamics)."""

from __future__ import annotations

from collections.abc import Callable

from electrodb.stores import ElectroDBStores

__all__ = ["run_builders"]


def run_builders(
    stores: ElectroDBStores, log: Callable[[str], None] | None = None, settings: object | None = None
) -> dict[str, int]:
    """Run every builder in data-flow order; return how many items each processed."""
    from electrodb.builders.properties import AnalysisSettings
    from electrodb.builders.summary import ElectrolyteSummaryBuilder
    from electrodb.builders.trajectory import TrajectoryPropertiesBuilder

    s = stores.connect()
    builders = {
        "properties": TrajectoryPropertiesBuilder(
            s.trajectories,
            s.data,
            s.structure,
            s.transport,
            s.pairing,
            s.kinetics,
            s.builds,
            settings=settings if isinstance(settings, AnalysisSettings) else None,
        ),
        "summary": ElectrolyteSummaryBuilder(
            s.structure, s.transport, s.pairing, s.kinetics, s.trajectories, s.electrolytes
        ),
    }
    try:
        from electrodb.builders.thermo import ThermoBuilder

        builders["thermo"] = ThermoBuilder(s.electrolytes, s.structure, s.trajectories, s.thermo)
    except ImportError:  # pragma: no cover - thermo builder optional during development
        pass
    from electrodb.builders.solvation import SolvationBuilder

    builders["solvation"] = SolvationBuilder(s.data, s.solvation)
    counts = {}
    for name, builder in builders.items():
        items = list(builder.get_items())
        if log:
            log(f"{name}: {len(items)} new or changed inputs")
        results = [builder.process_item(item) for item in items]
        builder.update_targets(results)
        counts[name] = len(items)
    return counts
