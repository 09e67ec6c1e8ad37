"""The ``bridge`` change kind: a task file (docs/tasks.md) rendered per host."""
