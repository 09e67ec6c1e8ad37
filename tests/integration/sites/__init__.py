"""The sites tier: site workers on Celery with a real redis-server and PostgreSQL (docs/scale.md);
run by the full suite, not by the fast tier (docs/testing.md)."""
