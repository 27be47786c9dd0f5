"""The gallery store: one SQLite file and the image files beside it in the data dir, or a PostgreSQL
database holding both (``store_url``; db.py, blobs.py, pg_schema.py, pg_backup.py). Schema and
migrations, persons, images and their vectors written in one transaction, model versions and
the atomic switch, thresholds, API keys, the access log, jobs, the change log the search index
refreshes from, erasure, backup, export/import (transfer.py) and the console's Parquet
snapshots (snapshot.py). It knows nothing of models, faces or HTTP.

May import: core.errors, core.settings.
"""
