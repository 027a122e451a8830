"""The report file names moved to `fluxora.report_names`. This module only keeps `fluxora.status`
working until it imports them from there; delete it then."""

from fluxora.report_names import ACCURACY_REPORT, DECISIONS_FILE

__all__ = ["ACCURACY_REPORT", "DECISIONS_FILE"]
