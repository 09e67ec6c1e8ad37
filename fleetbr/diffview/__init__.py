"""``--diff``: a host's change as a before/after view (docs/diff.md).

- :mod:`.model`: the data (:class:`HostDiff`: runtime sections and files, each with its
  unified diff; ``to_json``/``from_json``), kind-neutral and free of I/O;
- :mod:`.runtime`: a host's facts as readable lines per section;
- :mod:`.project`: the facts with a bridge plan's expected state laid over them (the "after");
- :mod:`.files`: the files a plan writes or removes, old content from the facts;
- :mod:`.text`: the pure text renderer (plain, or ANSI colours for a terminal).
"""
