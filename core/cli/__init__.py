"""The command line, ``manyangles`` (also ``python -m core``): one handler per subcommand, declared
with its name, help and arguments by ``@command`` (registry.py) in a module by job: a person's
photos and searches (persons.py), the gallery's upkeep (gallery.py), API keys and the access log
(access.py), model versions and re-embedding (model_versions.py), evaluation and calibration (evaluation.py); main.py builds
the parser from them and dispatches, and flags.py makes a flag of every setting. Handlers print
results on standard output and raise core.errors for the exit codes main.py maps.

May import: core.errors, core.settings, core.progress, core.results, core.service, core.store, core.faces, core.augment, core.search, core.enroll, core.evaluation, core.batch, core.schemas.
"""
