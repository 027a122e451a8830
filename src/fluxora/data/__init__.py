"""Data sources, the canonical long format, and validation."""
