"""ElectroDB test suite; the folders mirror the package (tests/store tests electrodb/store, ...)."""
