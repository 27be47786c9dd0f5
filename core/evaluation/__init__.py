"""Measuring the models on labelled photos: the open-set protocol (protocol.py, dataset.py),
embedding a dataset with its views and a cache (embedding.py), metrics, the cross-validated
study of rules and views (crossval.py, nested.py) and calibration of the thresholds
(calibration.py). Used by ``manyangles eval`` / ``calibrate`` and bench/.

May import: core.errors, core.settings, core.progress, core.faces, core.augment, core.search, core.store.
"""
