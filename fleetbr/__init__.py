"""fleetbr: bridged networking for a fleet of Linux hypervisors, with a dead-man rollback timer."""

__version__ = "0.1.0"
