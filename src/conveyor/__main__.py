"""``python -m conveyor``: the ``conveyor`` command, for when its script is not on PATH."""

from conveyor.cli.main import main

main()
