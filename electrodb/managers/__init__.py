"""Execution of campaign flows: run_locally worker processes (:mod:`.workers`), FireWorks and jobflow-remote."""
