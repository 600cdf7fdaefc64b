"""ElectroDB."""
