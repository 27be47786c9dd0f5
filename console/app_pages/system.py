"""Health of each deployment, models, device, gallery size, configuration."""

from __future__ import annotations

import streamlit as st

from console.client import ApiError
from console.config import api, load_config

st.title("System")
config = load_config()
st.write({"API": config.api_url, "API key": config.masked_key, "data dir": str(config.data_dir or "remote")})
try:
    health = api().health()
except ApiError as exc:
    st.error(exc.friendly())
    st.info("Start the service with `make run`, or point MANYANGLES_API_URL at it.")
    st.stop()
st.metric("Status", health["status"])
for name, info in health["deployments"].items():
    st.subheader(name)
    st.json(info)
try:
    st.metric("Persons", len(api().persons()))
except ApiError as exc:
    st.error(exc.friendly())
