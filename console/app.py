"""ManyAngles admin console: `streamlit run console/app.py` (make run starts it)."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `console` importable when run as a script

from console import gallery_source
from console.config import load_config

st.set_page_config(page_title="ManyAngles", layout="wide")
gallery_source.warm(gallery_source.where(), load_config().api_key)  # the Gallery's first read, in the background
pages = Path(__file__).parent / "app_pages"
st.navigation(
    [
        st.Page(pages / "enroll.py", title="Enroll", default=True),
        st.Page(pages / "gallery.py", title="Gallery"),
        st.Page(pages / "identify.py", title="Identify and verify"),
        st.Page(pages / "latency.py", title="Latency"),
        st.Page(pages / "system.py", title="System"),
    ]
).run()
