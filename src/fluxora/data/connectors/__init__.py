"""Remote data providers: Open-Meteo (temperature) and EIA-930 (hourly demand by balancing authority)."""
