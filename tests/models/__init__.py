"""Tests of electrodb.models."""
