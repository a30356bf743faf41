"""Data sources and sample data."""
