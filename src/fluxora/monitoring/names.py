"""File names of the monitoring reports under FLUXORA_HOME/reports.

Standard library only: the service's Prometheus collector reads these files without pulling in
pandas, Evidently or the pipeline.
"""

DRIFT_REPORT = "drift"  # drift.json / drift.html
DRIFT_SERIES_FILE = "drift_series.json"
ACCURACY_REPORT = "accuracy"  # accuracy.json / accuracy.html
DECISIONS_FILE = "decisions.jsonl"
STATE_FILE = "loop_state.json"
