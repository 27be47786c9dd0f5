"""The Streamlit admin console: talks to the service over HTTP only (no model code here)."""
