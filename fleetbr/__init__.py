"""fleetbr: bridged networking for a fleet of Linux hypervisors, with a dead-man rollback timer."""

from fleetbr._quiet import quiet_dependency_warnings

quiet_dependency_warnings()

__version__ = "0.1.0"
