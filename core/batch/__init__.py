"""Batch jobs over the whole gallery (Ray Data)."""
