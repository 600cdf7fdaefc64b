"""Tests of electrodb.flows."""
