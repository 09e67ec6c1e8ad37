"""The run history: every plan/apply/rollback/status/run (and check) run in an embedded SQLite
database (``store``), recorded as it happens (``record``), read by ``history``/``show``
(``present``) and by ``apply --resume``."""
