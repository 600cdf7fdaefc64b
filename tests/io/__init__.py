"""Tests of electrodb.io."""
