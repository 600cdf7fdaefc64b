"""The ``electrodb`` command line (:mod:`.main`), the demo, console reporting and plots."""
