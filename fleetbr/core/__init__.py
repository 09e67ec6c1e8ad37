"""The run engine: one typed :class:`~fleetbr.core.request.RunRequest` per run, one assembler
that runs it (:mod:`fleetbr.core.assemble`), the :class:`~fleetbr.core.runner.Runner` protocol
and the registry of change kinds (:mod:`fleetbr.core.kinds`). Every front door (the CLI, the
Python API, the Nornir tasks, watch) builds a request; nothing below the CLI sees argparse."""
