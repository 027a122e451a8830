"""Feature engineering (pure) and the Feast wrapper."""
