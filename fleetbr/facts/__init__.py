"""Facts: one remote command per host plus pure parsers that turn its output into typed results."""
