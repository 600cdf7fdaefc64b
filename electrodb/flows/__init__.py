"""jobflow Makers and jobs: per-system MD (:mod:`.md`), batched MD, campaigns, solvation TI and model training."""
