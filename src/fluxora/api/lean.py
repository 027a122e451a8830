"""Keep the serving process lean.

xgboost imports scikit-learn at import time when it is installed (about 3 s and ~100 MB here),
only for its scikit-learn wrapper classes. The service uses the native Booster, so it imports
xgboost with scikit-learn hidden; xgboost then falls back to its no-scikit-learn mode. Only a
process that builds the service before importing xgboost is affected, and Fluxora's training
uses `xgboost.train`, which does not need scikit-learn.
"""

from __future__ import annotations

import importlib
import sys


def import_xgboost_without_sklearn() -> None:
    if "xgboost" in sys.modules:
        return
    hide = "sklearn" not in sys.modules
    if hide:
        sys.modules["sklearn"] = None  # type: ignore[assignment]  # makes `import sklearn` raise ImportError
    try:
        importlib.import_module("xgboost")
    finally:
        if hide and sys.modules.get("sklearn", False) is None:
            del sys.modules["sklearn"]
