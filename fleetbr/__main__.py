"""Allow ``python -m fleetbr``."""

from fleetbr.cli import main

raise SystemExit(main())
