"""The ``conveyor`` command line. Subcommands import what they need when they run."""
