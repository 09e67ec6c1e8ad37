"""The HTML rollout report (docs/report.md): one self-contained file per run, from the history.

``model.build`` turns a recorded run into the page's data (pure), ``render.render_html`` turns
that into HTML with the jinja2 templates of this package (autoescape on; inline CSS, SVG and
script, no external URL), and ``render.write_report`` does both for a run of a history store.
"""
