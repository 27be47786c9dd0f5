"""The Streamlit admin console (talks to the service over HTTP only). Filled by the console issue."""
