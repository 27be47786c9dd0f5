"""Storing a photo: a new person or one more photo of a person, with its gated views, checked
against the gallery for the same face, in one transaction (enroller.py); building the records
of one enrollment and its progress events (building.py); the duplicate-face check under the
store's write lock (face_check.py); the same check for a gallery brought in by import
(import_check.py).

May import: core.errors, core.settings, core.results, core.faces, core.augment, core.search, core.store.
"""
