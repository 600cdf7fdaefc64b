"""Tests of electrodb.analysis."""
