"""The ``command`` change kind: ``fleetbr run --deadman N --undo UNDO -- CMD``."""
