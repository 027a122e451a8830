"""Production monitoring: data drift, realized accuracy of served forecasts, the retrain loop, metrics."""
