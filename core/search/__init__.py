"""1:N search and the decisions on its scores: the in-memory index of one model's vectors
(index.py), kept current from the store's change log (live.py), matching rules (rules.py:
how a person's several vectors become one score), the matcher (matching.py), the one
threshold resolver (thresholds.py), how FPIR grows with the gallery (fpir.py), and faces
enrolled twice (duplicates.py).

May import: core.errors, core.settings, core.faces, core.store.
"""
