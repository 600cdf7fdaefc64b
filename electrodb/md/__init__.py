"""The integrators under the jobflow Makers: ASE minimisation, NPT and NVT (:mod:`.dynamics`), batched NVT with
torch-sim (:mod:`.torchsim`) and the MD of one alchemical TI window (:mod:`.alchemical`)."""
