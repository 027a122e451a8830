"""Prefect flows: wiring only; each task calls one `fluxora.pipeline` function."""
