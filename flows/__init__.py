"""Prefect flows: wiring only; each task calls one `fluxora.steps` function."""
