"""Batch jobs over the whole gallery: re-embedding every image with another model on Ray Data
(reembed.py, reembed_worker.py), locally or on a running Ray cluster, and launching a job as
a process of its own (launch.py).

May import: core.errors, core.settings, core.faces, core.search, core.store.
"""
