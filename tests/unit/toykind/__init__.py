"""A toy change kind: everything a new kind needs lives in this folder (see test_engine.py)."""
