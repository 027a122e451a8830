"""Production monitoring: data drift, realized accuracy of served forecasts, the retrain loop.

Its figures reach Prometheus through the service (`fluxora.api.monitoring_metrics`), which reads
the reports written here.
"""
