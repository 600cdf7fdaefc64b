"""Data in and out: ingest of external trajectories, ML-ready table exports and trajectory files."""
