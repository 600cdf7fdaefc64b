"""Trajectory analysis: transport, structure, ion pairing and exchange kinetics (pure numpy/scipy)."""
