"""File names of the monitoring reports under FLUXORA_HOME/reports.

No imports at all: the monitoring step writes these files, and the service's Prometheus
collector (`fluxora.api.monitoring_metrics`) and `fluxora status` read them without pulling in
the monitoring package (pandas, Evidently) or the pipeline.
"""

DRIFT_REPORT = "drift"  # drift.json / drift.html
DRIFT_SERIES_FILE = "drift_series.json"
ACCURACY_REPORT = "accuracy"  # accuracy.json / accuracy.html
DECISIONS_FILE = "decisions.jsonl"
STATE_FILE = "loop_state.json"
