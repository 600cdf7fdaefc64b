"""Integrators: ASE MD (:mod:`.dynamics`), batched torch-sim NVT (:mod:`.torchsim`), TI windows (:mod:`.alchemical`)."""
