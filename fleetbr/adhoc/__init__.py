"""``fleetbr run``: ad-hoc commands and scripts on the selected hosts (docs/run.md).

:mod:`spec` says what is sent (:class:`~fleetbr.adhoc.spec.RunSpec`), :mod:`job` runs it on one
host, :mod:`present` and :mod:`text` (pure) show the results, :mod:`main` ties them to the CLI.
"""
