"""Synthetic views of a face and their identity gate: which views (views.py), the classic warps
(classic.py), Stable Diffusion 1.5 img2img (stable_diffusion.py and its sd_* stages), the
augmentor factory, and the gate (gate.py) that keeps a view only while it still looks like the
person; viewmaker.py runs generation then the gate in this process.

May import: core.errors, core.settings, core.faces, core.store.
"""
