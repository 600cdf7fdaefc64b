"""Tests of electrodb.store."""
