"""Neural-network potentials: references, verified loading (:mod:`.loader`), staging by sha256, NequIP TorchScript,
the long-range Coulomb term, training data labelling and MACE training."""
