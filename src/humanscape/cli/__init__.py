"""The ``humanscape`` command, one module per command group (in the manner of rasterio's ``rio``).

- :mod:`~humanscape.cli.main`: the root group (``--verbose``, ``--version``) and where every
  command and group is registered;
- :mod:`~humanscape.cli.boundary`: the one error boundary and the one output check, applied to
  every command by its class;
- :mod:`~humanscape.cli.options`: every shared option, each name with one meaning;
- :mod:`~humanscape.cli.scenes` (``info``, ``indices``, ``composite``, ``chip``, ``embed``,
  ``encoders``, ``predict-chips``, ``demo``), :mod:`~humanscape.cli.settlements`,
  :mod:`~humanscape.cli.population`, :mod:`~humanscape.cli.economy`,
  :mod:`~humanscape.cli.migration`, :mod:`~humanscape.cli.flows`: the commands. A command body
  parses, makes one call into its task's workflow (``humanscape.tasks.<task>.workflow``) and
  prints the lines it returns.
"""

from humanscape.cli.main import cli, main

__all__ = ["cli", "main"]
