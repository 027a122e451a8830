"""The FastAPI forecast service. Imports no training, Prefect or Evidently code."""
