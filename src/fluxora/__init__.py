"""Fluxora: electric load forecasting platform."""
