"""The HTTP shapes of every answer (pydantic), shared by serve/ and the CLI's ``--json``: the
results of enroll/identify/verify (results.py), the gallery (gallery.py), model versions, jobs,
keys and the access log (admin.py), health (health.py) and statistics (stats.py).

May import: core.errors, core.settings, core.results, core.service, core.faces, core.augment, core.search, core.store.
"""
