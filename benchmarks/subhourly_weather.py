"""Issued weather at a 30-minute model (issue 13): how many evaluation steps read a forecast, and
what ridge scores with it, on the synthetic sample's day-ahead backtest.

Hourly vintages (`data.weather_forecast.provider=synthetic`) are turned into the pipeline's
`weather_forecast` table (`fluxora.steps.weather.forecast_table`, rows at the data's step) and the
backtest reads them in `issued` mode. Prints the share of evaluation steps with an issued value
and ridge's MAE ÷ the better seasonal naive's (ratios, no timing).

    .venv/bin/python -u benchmarks/subhourly_weather.py [--days 60] [--resolution 30min]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    from fluxora.config import compose
    from fluxora.data import weather_forecast
    from fluxora.data.gate import run_gate
    from fluxora.data.synthetic import generate
    from fluxora.features.weather import IssuedLookup
    from fluxora.models import backtest as bt
    from fluxora.models.panel import Panel
    from fluxora.steps.weather import forecast_table

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--series", type=int, default=3)
    p.add_argument("--resolution", default="30min")
    args = p.parse_args()
    cfg = compose(
        [
            f"data.n_series={args.series}",
            f"data.days={args.days}",
            f"data.resolution={args.resolution}",
            "data.weather_forecast.provider=synthetic",
            "train.horizon=24h",
            "backtest.windows=6",
            "train.min_train_days=14",
        ]
    )
    data = run_gate(generate(cfg.data), cfg.data.gate, cfg.data.freq, cfg.data.resolution).data
    screened = weather_forecast.collect(cfg.data, data, Path("."))
    assert screened is not None
    panel = Panel.from_frame(data, IssuedLookup(forecast_table(cfg, screened.forecasts, data)))
    spec = bt.resolve(cfg, panel, weather="issued")
    cells = [
        b.issued_temp
        for i, o in enumerate(spec.origins)
        if (b := bt.evaluation_batch(panel, o, spec, i)) is not None and b.issued_temp is not None
    ]
    share = float(np.isfinite(np.concatenate(cells)).mean()) if cells else 0.0
    names = ["ridge", "seasonal_naive_daily", "seasonal_naive_weekly"]
    result = bt.run(panel, cfg, names, spec)
    naive = min(result.scores(n)["mae"] for n in names[1:])
    ridge = result.scores("ridge")["mae"]
    print(f"{args.resolution}: evaluation steps with an issued forecast {share:.3f}")
    print(f"ridge MAE {ridge:.3f}, better seasonal naive MAE {naive:.3f}, ratio {ridge / naive:.3f}")


if __name__ == "__main__":
    main()
