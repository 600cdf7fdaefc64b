"""Tests of electrodb.builders."""
