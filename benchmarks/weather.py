"""Weather forecasts as issued (issue 12): what the served configuration scores, and what the join costs.

For each data set, seeded forecast vintages are built like `data.weather_forecast.provider=synthetic`
does (six-hourly runs, 48 h, error 1.5 °C at a day ahead growing with the square root of the lead,
wandering along the lead like a real forecast's), the `weather_forecast` view is built point in
time, and the same day-ahead backtest is scored with the weather at the target hours taken as

- `issued`: the forecast issued at or before each origin (what `fluxora serve` now serves),
- `ex_post`: the observed temperature (a perfect forecast: what `fluxora backtest` used to report),
- `persistence`: the same hour on the latest observed day (what the service served before).

It prints MAPE ÷ the better seasonal naive per model and mode, `issued` ÷ `ex_post`, and the
time and peak memory of the vintage join (`forecast_states`) against a bare `pandas.merge_asof`
of the same cells. Data: the synthetic sample (`--series` series x `--days` days) and the real
file /work/shared/data/uk_meters.csv.gz (its own observed temperature under the synthetic
forecast error; the file has no forecast vintages of its own).

    .venv/bin/python benchmarks/weather.py [--series 20] [--days 365] [--models ridge xgboost]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REAL = Path("/work/shared/data/uk_meters.csv.gz")
MODES = ("issued", "ex_post", "persistence")


def measured(fn: Callable[[], Any], repeat: int = 3) -> tuple[Any, float, float]:
    """(result, median seconds of `repeat` untraced runs, peak MB of allocations in one traced run,
    numpy's and pandas' included: tracing slows the run, so it is not timed)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, float(np.median(times)), peak


def bare_join(vintages: pd.DataFrame, table: Any, hours: int) -> pd.DataFrame:
    """The same (origin, lead) cells looked up with one plain merge_asof, nothing else."""
    from fluxora.data.schema import ISSUED_AT, SERIES_ID, TARGET_TIME, TEMPERATURE
    from fluxora.features.names import EVENT_TIMESTAMP

    origins = table.select([SERIES_ID, EVENT_TIMESTAMP]).to_pandas()
    cells = origins.loc[origins.index.repeat(hours)].reset_index(drop=True)
    cells[TARGET_TIME] = cells[EVENT_TIMESTAMP] + pd.to_timedelta(np.tile(np.arange(1, hours + 1), len(origins)), "h")
    right = vintages[[SERIES_ID, TARGET_TIME, ISSUED_AT, TEMPERATURE]].sort_values(ISSUED_AT)
    return pd.merge_asof(
        cells.sort_values(EVENT_TIMESTAMP),
        right,
        left_on=EVENT_TIMESTAMP,
        right_on=ISSUED_AT,
        by=[SERIES_ID, TARGET_TIME],
        direction="backward",
    )


def evaluate(name: str, data: pd.DataFrame, overrides: list[str], models: list[str]) -> None:
    from fluxora.config import compose
    from fluxora.data import weather_forecast
    from fluxora.data.schema import SERIES_ID, TIMESTAMP
    from fluxora.features.weather import IssuedLookup, forecast_states
    from fluxora.models import backtest as bt
    from fluxora.models.forecasters import BASELINES
    from fluxora.models.panel import Panel

    cfg = compose([*overrides, "data.weather_forecast.provider=synthetic", f"backtest.models=[{','.join(models)}]"])
    wf = cfg.data.weather_forecast
    screened = weather_forecast.collect(cfg.data, data, Path("."))
    assert screened is not None
    vintages = screened.forecasts
    last = {
        str(s): np.datetime64(t.tz_convert(None), "ns") for s, t in data.groupby(SERIES_ID)[TIMESTAMP].max().items()
    }
    table, t_join, m_join = measured(lambda: forecast_states(vintages, wf.hours, wf.max_age_hours, last))
    _, t_bare, m_bare = measured(lambda: bare_join(vintages, table, wf.hours))
    panel = Panel.from_frame(data, IssuedLookup(table))
    print(f"\n{name}: {data[SERIES_ID].nunique()} series, {len(data)} rows, {len(vintages)} forecast vintage rows")
    print(
        f"  vintage join  forecast_states {t_join:6.2f} s {m_join:7.0f} MB   bare merge_asof {t_bare:6.2f} s "
        f"{m_bare:7.0f} MB   ratio {t_join / t_bare:4.2f}x time, {m_join / m_bare:4.2f}x memory"
    )
    scores: dict[str, dict[str, float]] = {}
    for mode in MODES:
        spec = bt.resolve(cfg, panel, weather=mode)
        started = time.perf_counter()
        result = bt.run(panel, cfg, [*BASELINES, *models], spec)
        board = bt.leaderboard(result)
        overall = {e["model"]: e["overall"] for e in board["models"]}
        naive = min(overall[b]["mape"] for b in BASELINES)
        scores[mode] = {m: overall[m]["mape"] / naive for m in models}
        scores[mode]["naive"] = naive
        print(f"  backtest {mode:<12} {time.perf_counter() - started:6.1f} s, {len(spec.origins)} windows")
    print(f"  {'MAPE / better seasonal naive':<32}" + "".join(f"{m:>12}" for m in MODES) + "   issued/ex_post")
    for m in models:
        row = "".join(f"{scores[mode][m]:12.3f}" for mode in MODES)
        print(f"  {m:<32}{row}   {scores['issued'][m] / scores['ex_post'][m]:10.3f}")
    print(f"  {'(better seasonal naive MAPE %)':<32}" + "".join(f"{scores[mode]['naive']:12.2f}" for mode in MODES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--windows", type=int, default=28)
    parser.add_argument("--models", nargs="+", default=["ridge", "xgboost"])
    parser.add_argument("--no-real", action="store_true", help="skip the real file")
    args = parser.parse_args()

    from fluxora.config import compose
    from fluxora.data.gate import run_gate
    from fluxora.data.synthetic import generate

    common = [f"backtest.windows={args.windows}", "backtest.horizon=24", "train.origin_stride_hours=6"]
    cfg = compose([f"data.n_series={args.series}", f"data.days={args.days}", *common])
    data = run_gate(generate(cfg.data), cfg.data.gate, cfg.data.freq, cfg.data.resolution).data
    evaluate(
        f"synthetic ({args.series} x {args.days} days)", data, [f"data.n_series={args.series}", *common], args.models
    )
    if not args.no_real and REAL.is_file():
        real = [*common, "data.source=file", "features.timezone=Europe/London", "features.holiday_country=GB"]
        cfg = compose(real)
        raw = pd.read_csv(REAL)
        raw["timestamp"] = pd.to_datetime(raw["timestamp"], utc=True)
        data = run_gate(raw, cfg.data.gate, cfg.data.freq, cfg.data.resolution).data
        evaluate(f"real {REAL.name}", data, real, args.models)


if __name__ == "__main__":
    main()
