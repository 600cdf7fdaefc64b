"""Tests of electrodb.api."""
