"""Trajectory analysis: the science, pure numpy/scipy and no I/O.

- structure: ``structure``, ``rdf_kernel``, ``shells``, ``shell_sampling``, ``structure_sampling``;
- transport: ``msd``, ``transport``, ``diffusion_verdict``, ``viscosity``, ``finite_size``;
- collective transport (ionic conductivity, Onsager coefficients, transference numbers): ``collective``,
  ``conductivity``, ``conductivity_verdict``;
- ion pairing and exchange kinetics: ``pairing``, ``kinetics``;
- Kirkwood–Buff integrals and activities: ``kirkwood_buff``, ``kb_finite_size``, ``kb_series``, ``activity``,
  ``acc_fit``;
- free energies: ``free_energy``, ``ti_paths``;
- checks of an MD run: ``md_checks``;
- the time-series statistics every property's error bar uses: ``statistics``, with ``sampling`` (equilibration
  cut, effective samples, drift);
- ``convergence`` holds the verdict vocabulary and targets, ``periodic`` the minimum-image geometry.
"""
