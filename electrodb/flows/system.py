"""One system's flow: packed box -> equilibration -> production, fixed-length or in segments until converged.

Without ``until`` the production runs exactly ``md.production_ps``. With ``until`` (campaign YAML) it runs a first
segment and a :class:`~electrodb.flows.segments.ConvergenceCheckMaker` job that adds the next segment and check
through a jobflow ``Response`` until the ``until`` properties converge or the budget is spent
(:mod:`electrodb.flows.segments`). With an ``audit_maker`` (campaign YAML ``audit:``) a committee audit job follows:
it takes the last job's output, which jobflow resolves to the final segment's once the checks have added them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobflow import Flow, Maker

from electrodb.flows.audit import AuditMaker
from electrodb.flows.md import BoxMaker, EquilibrationMaker, ProductionMDMaker
from electrodb.flows.segments import ConvergenceCheckMaker
from electrodb.systems.campaign import SystemSpec

__all__ = ["ElectrolyteFlowMaker"]


@dataclass
class ElectrolyteFlowMaker(Maker):
    """box -> equilibration -> production for one system.

    Parameters
    ----------
    name
        Flow name.
    box_maker, equilibration_maker, production_maker
        The stages (a stored box or equilibrated state is reused, a stored run continued).
    check_maker
        The convergence check after each segment (campaigns with ``until``; default
        :class:`~electrodb.flows.segments.ConvergenceCheckMaker`).
    segment_end_ps
        With ``until``: run the production to this length (ps) before the first check (default the campaign's
        ``budget.segment_ps``); the local campaign runner uses it to run one chosen segment at a time.
    audit_maker
        A committee audit of the run after its production (:class:`~electrodb.flows.audit.AuditMaker`; None: no
        audit). The local campaign runner audits after all segments instead (:func:`~electrodb.flows.audit.run_audits`).
    """

    name: str = "electrolyte md"
    box_maker: BoxMaker = field(default_factory=BoxMaker)
    equilibration_maker: EquilibrationMaker = field(default_factory=EquilibrationMaker)
    production_maker: ProductionMDMaker = field(default_factory=ProductionMDMaker)
    check_maker: ConvergenceCheckMaker | None = None
    segment_end_ps: float | None = None
    audit_maker: AuditMaker | None = None

    def make(self, spec: SystemSpec) -> Flow:
        """The system's flow; with ``spec.until`` the production is the first segment, followed by its check."""
        box = self.box_maker.make(spec)
        eq = self.equilibration_maker.make(spec, box.output)
        label = f"{spec.salt} {spec.molality:.2f} m {spec.temperature:.0f} K"
        if spec.until is None:
            prod = self.production_maker.make(spec, eq.output)
            for j, stage in ((box, "box"), (eq, "equilibrate"), (prod, "production")):
                j.name = f"{stage} {label}"
            return self._audited([box, eq, prod], spec, label)
        first_ps = self.segment_end_ps or (spec.budget.segment_ps if spec.budget else None) or spec.md.production_ps
        prod = self.production_maker.make(spec, eq.output, production_ps=first_ps)
        checker = self.check_maker or ConvergenceCheckMaker(production_maker=self.production_maker)
        check = checker.make(spec, prod.output, eq.output, segment=1)
        for j, stage in ((box, "box"), (eq, "equilibrate"), (prod, "production"), (check, "convergence check")):
            j.name = f"{stage} {label}" + (" segment 1" if j in (prod, check) else "")
        return self._audited([box, eq, prod, check], spec, label)

    def _audited(self, jobs: list, spec: SystemSpec, label: str) -> Flow:
        """The system's jobs as one Flow, with the committee audit after the last one when asked for."""
        last = jobs[-1]
        if self.audit_maker is not None and self.audit_maker.settings is not None:
            audit = self.audit_maker.make(spec, last.output)
            audit.name = f"committee audit {label}"
            jobs = [*jobs, audit]
        return Flow(jobs, output=last.output, name=f"{self.name} {label}")
