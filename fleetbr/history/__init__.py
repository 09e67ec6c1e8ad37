"""The run history: every plan/apply/rollback/status/run (and check) run in a database behind one
interface (``store``): an SQLite file (``sqlite``, the default) or PostgreSQL (``postgres``), picked
by the location (``location``); recorded as it happens (``record``), read by ``history``/``show``
(``present``) and by ``apply --resume``."""
