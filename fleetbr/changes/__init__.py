"""Change kinds, one folder each: what a run changes (a bridge task, an operator's command)."""
