"""Tests of electrodb.systems."""
