"""Tests of electrodb.documents."""
