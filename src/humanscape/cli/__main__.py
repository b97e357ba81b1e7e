"""``python -m humanscape.cli``: the ``humanscape`` command."""

from humanscape.cli.main import main

main()
