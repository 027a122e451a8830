"""Real load (issue 13): the served configuration's day-ahead backtest on the files in /work/shared/data.

For each real file (and the synthetic sample), the configuration `fluxora run` would train and
serve is composed (`train.weather=auto`: the issued forecast when `data.weather_forecast` has a
source, else persistence, the same hour on the latest observed day), the file is read by the
library's own file reader (`fluxora.data.sources.read_files`) and passed through the validation
gate, and every candidate of `model=auto` plus both seasonal naives is backtested on the same
day-ahead windows (`backtest.horizon=24`, one origin every 24 h, `--windows` of them) with the
file's own calendar (`features.timezone`, `features.holiday_country`).

Printed per file: the model with the lowest MAE among those run, what the default `fluxora run`
(`model=auto`: the backtest winner among its candidates) registers, and for every model its
MAPE and MAE / the better seasonal naive's, 80 % interval coverage, pinball loss and fit +
predict seconds; then the wall time of the file. The real files have no forecast vintages of their own, so the file with
temperature is also run with `data.weather_forecast.provider=synthetic` (its observed temperature
under a seeded forecast error, as `benchmarks/weather.py` does).

SimBench's 15-minute profiles run twice on the same windows: at their native resolution (the
default `data.freq: auto`: a day ahead is 96 steps, the seasonal naives a day and a week of
quarter-hours) and averaged to hourly (`data.freq=h`), each MAE divided by the better seasonal
naive at its own resolution; the synthetic generator runs at `data.resolution=30min` as well.

The files are read from /work/shared/data (not copied into the repository; CI does not need them).
Extra Hydra overrides apply to every file, e.g. a new feature set:

    .venv/bin/python benchmarks/real_data.py [override ...] [--windows 28]
        [--files uk uci simbench synthetic] [--models ridge xgboost prophet]

(overrides first: `--files` and `--models` take every word after them).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REAL = Path("/work/shared/data")


@dataclass(frozen=True)
class Case:
    name: str
    file: str  # "" = the built-in synthetic sample
    overrides: tuple[str, ...]


CASES = {
    "uk": [
        Case(
            "uk_meters (persistence weather)",
            "uk_meters.csv.gz",
            ("data=csv", "features.timezone=Europe/London", "features.holiday_country=GB"),
        ),
        Case(
            "uk_meters (issued, synthetic vintages)",
            "uk_meters.csv.gz",
            (
                "data=csv",
                "features.timezone=Europe/London",
                "features.holiday_country=GB",
                "data.weather_forecast.provider=synthetic",
            ),
        ),
    ],
    # Naive local stamps (README): read in Europe/Paris; the calendar follows data.timezone.
    "uci": [
        Case(
            "uci_household (no temperature)",
            "uci_household.csv.gz",
            ("data=csv", "data.timezone=Europe/Paris", "features.holiday_country=FR"),
        )
    ],
    # Naive, no zone stated, but German legal time: 02:00-02:45 is missing on 2016-03-27 and
    # repeated on 2016-10-30, so read in Europe/Berlin (the calendar follows), German holidays.
    "simbench": [
        Case(
            "simbench 48 profiles (native 15 min)",
            "simbench_profiles.parquet",
            ("data=parquet", "data.timezone=Europe/Berlin", "features.holiday_country=DE"),
        ),
        Case(
            "simbench 48 profiles (15 min -> hourly, data.freq=h)",
            "simbench_profiles.parquet",
            ("data=parquet", "data.timezone=Europe/Berlin", "features.holiday_country=DE", "data.freq=h"),
        ),
    ],
    "synthetic": [
        Case("synthetic sample (20 x 365 d)", "", ("data.n_series=20", "data.days=365")),
        Case(
            "synthetic sample at 30 min (20 x 365 d)",
            "",
            ("data.n_series=20", "data.days=365", "data.resolution=30min"),
        ),
    ],
}


def load(case: Case, cfg: Any) -> pd.DataFrame:
    """The file through the library's reader and the validation gate, as `fluxora run` reads it."""
    from fluxora.data.gate import run_gate
    from fluxora.data.sources import read_files
    from fluxora.data.synthetic import generate

    if case.file:
        tables = list(read_files(cfg.data, [REAL / case.file]))
        import pyarrow as pa

        raw = pa.concat_tables(tables, promote_options="default").to_pandas()
    else:
        raw = generate(cfg.data)
    return run_gate(raw, cfg.data.gate, cfg.data.freq, cfg.data.resolution).data  # freq auto: native


def panel_for(cfg: Any, data: pd.DataFrame) -> Any:
    from fluxora.data import weather_forecast
    from fluxora.features.weather import IssuedLookup
    from fluxora.models.panel import Panel
    from fluxora.steps.weather import forecast_table

    wf = cfg.data.weather_forecast
    if not (wf.path or wf.provider):
        return Panel.from_frame(data)
    screened = weather_forecast.collect(cfg.data, data, Path("."))
    assert screened is not None
    # The pipeline's own table: rows at the data's step (15-minute SimBench origins each get theirs).
    return Panel.from_frame(data, IssuedLookup(forecast_table(cfg, screened.forecasts, data)))


def cohorts(panel: Any, span_hours: int) -> list[Any]:
    """Sub-panels of series that end within `span_hours` of each other. `bt.resolve` puts every
    window before the shortest series' end, so a file whose meters cover different years (the UK
    file: 2012-2014 and 2020-2022) would score only the series alive then; each cohort gets its
    own windows at its own end and the file's figures pool them."""
    from fluxora.models.panel import HOUR, Panel

    order = sorted(panel.series, key=lambda s: panel.series[s].end, reverse=True)
    groups: list[list[str]] = []
    for sid in order:
        if groups and panel.series[groups[-1][0]].end - panel.series[sid].end <= span_hours * HOUR:
            groups[-1].append(sid)
        else:
            groups.append([sid])
    return [Panel({s: panel.series[s] for s in g}, panel.forecasts, panel.resolution) for g in groups]


def evaluate(case: Case, common: list[str], models: list[str]) -> None:
    from fluxora.config import compose
    from fluxora.data.schema import SERIES_ID
    from fluxora.models import backtest as bt
    from fluxora.models import metrics
    from fluxora.models.forecasters import BASELINES

    started = time.perf_counter()
    cfg = compose([*case.overrides, *common])
    data = load(case, cfg)
    panel = panel_for(cfg, data)
    t_data = time.perf_counter() - started
    failed: dict[str, str] = {}
    pooled: dict[str, dict[str, list[np.ndarray]]] = {}
    seconds: dict[str, float] = {}
    scored: set[str] = set()
    windows = []
    for sub in cohorts(panel, cfg.backtest.windows * cfg.backtest.step_hours):
        spec = bt.resolve(cfg, sub, weather=cfg.train.weather, horizon=cfg.train.horizon)
        result = bt.run(sub, cfg, list(BASELINES), spec)
        for m in models:
            if m in failed:
                continue
            try:  # one model's failure is printed with its reason, not the end of the benchmark
                result.runs[m] = bt.run(sub, cfg, [m], spec).runs[m]
            except Exception as exc:
                failed[m] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        scored |= set(result.evaluation.series.astype(str))
        windows.append(f"{len(spec.origins)} ending {str(spec.origins[-1])[:10]} ({len(sub.series)} series)")
        for name, run in result.runs.items():
            got = pooled.setdefault(name, {"y": [], "point": [], **{str(q): [] for q in run.quantiles}})
            got["y"].append(result.evaluation.y)
            got["point"].append(run.point)
            for q, values in run.quantiles.items():
                got[str(q)].append(values)
            seconds[name] = seconds.get(name, 0.0) + run.fit_seconds + run.predict_seconds
    runnable = [m for m in models if m not in failed]
    overall = {}
    for name, got in pooled.items():
        if name in failed:
            continue
        quantiles = {float(k): np.concatenate(v) for k, v in got.items() if k not in ("y", "point")}
        overall[name] = metrics.scores(np.concatenate(got["y"]), np.concatenate(got["point"]), quantiles)
        key = metrics.coverage_key(quantiles) or "coverage"
    naive_mape = min(overall[b]["mape"] for b in BASELINES)
    naive_mae = min(overall[b]["mae"] for b in BASELINES)
    metric = cfg.train.promotion_metric
    winner = min(runnable, key=lambda n: overall[n][metric]) if runnable else "-"
    print(
        f"\n{case.name}: {data[SERIES_ID].nunique()} series after the gate ({len(scored)} scored), "
        f"{len(data)} rows at {panel.resolution.name}, weather {spec.weather}, windows: {'; '.join(windows)}"
    )
    print(f"  lowest {metric}: {winner}; {default_registers(cfg, runnable, overall)}")
    print(
        f"  {'model':<22}{'MAPE %':>8}{'MAPE/naive':>11}{'MAE/naive':>10}{'cov80':>7}{'pinball':>10}{'fit+pred s':>11}"
    )
    for name in [*BASELINES, *runnable]:
        o = overall[name]
        print(
            f"  {name:<22}{o['mape']:8.2f}{o['mape'] / naive_mape:11.3f}{o['mae'] / naive_mae:10.3f}"
            f"{o.get(key, float('nan')):7.2f}{o.get('pinball', float('nan')):10.4g}{seconds[name]:11.1f}"
        )
    for m, why in failed.items():
        print(f"  {m:<22}excluded: {why}")
    print(f"  wall time {time.perf_counter() - started:.0f} s (reading + gate + panel {t_data:.0f} s)")


def default_registers(cfg: Any, runnable: list[str], overall: dict[str, dict[str, float]]) -> str:
    """What the default `fluxora run` (this cfg, no `model=` override) registers on these
    windows: the backtest winner among `model=auto`'s candidates, or the one model configured."""
    m, metric = cfg.model, cfg.train.promotion_metric
    if m.name != "auto":
        return f"the default model={m.name} registers {m.name}"
    ran = [c for c in m.candidates if c in runnable]
    if not ran:
        return f"the default model=auto's candidates {list(m.candidates)} were not run"
    best = min(ran, key=lambda n: overall[n][metric])
    missing = sorted(set(m.candidates) - set(ran))
    note = f" (of those run; not run: {missing})" if missing else ""
    return f"the default model=auto {list(m.candidates)} registers {best}{note}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=28)
    parser.add_argument("--files", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--models", nargs="+", default=None, help="default: model=auto's candidates")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied to every file")
    args = parser.parse_args()

    from fluxora.config import compose

    common = [
        f"backtest.windows={args.windows}",
        "backtest.horizon=24h",  # a day ahead at every resolution: 24, 48 or 96 steps
        "backtest.step_hours=24",
        "train.horizon=24h",
        *args.overrides,
    ]
    models = args.models or list(compose(["model=auto", *common]).model.candidates)
    for name in args.files:
        for case in CASES[name]:
            if case.file and not (REAL / case.file).is_file():
                print(f"\n{case.name}: {REAL / case.file} not found; skipped")
                continue
            evaluate(case, common, models)


if __name__ == "__main__":
    main()
