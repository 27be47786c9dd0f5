"""ManyAngles' library: everything that is neither the Serve deployments (serve/) nor the console
(console/). Its root holds only what every package uses: the one settings model (settings.py),
every typed error (errors.py), progress of long work (progress.py), what the service answers
(results.py) and the service facade (service.py) that the CLI and the HTTP API both call. The
packages follow the data's way: store -> faces -> augment, search -> enroll -> service ->
evaluation, batch -> schemas -> cli. core imports neither serve nor console. Each root module's
docstring names what it may import (errors, settings and progress: nothing above them).
"""
