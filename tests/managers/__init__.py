"""Tests of electrodb.managers."""
