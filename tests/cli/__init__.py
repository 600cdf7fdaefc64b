"""Tests of electrodb.cli."""
