"""Small helpers every layer may use: atomic output files, safe YAML and provenance (hashes, timestamps)."""
