"""Drift detection on 30 consecutive daily monitoring windows: false alarms and detection delay.

Synthetic load (`fluxora.data.synthetic`, seasons, weather and holidays as usual) is monitored
once a day for 30 days with the monitor's own per-series statistics (`fluxora.monitoring.effect`)
and the closed loop's own decision (`fluxora.monitoring.loop.decide`). One run has no change;
in each of the others a change starts on day `CHANGE_DAY` in the first `AFFECTED` series:

* level      load x1.15
* temp x2    the load's temperature response doubled (heating and cooling)
* stuck      the meter repeats its last reading
* clock +1h  every reading is stamped one hour late
* new series `AFFECTED` series that did not exist before appear

Printed: the false-alarm rate (flagged series x window in the unchanged run), and per change
the share of affected series detected within 2 days, the median and worst delay in days, and
whether the retrain decision fired within 2 days (and how often on the unchanged run).

    .venv/bin/python benchmarks/drift.py [--series 40] [--start 2024-09-21] [--seed 7] [--real]

`--real` also monitors the files in /work/shared/data (30 consecutive windows at the end of
each series, no injected change) and prints their false-alarm rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fluxora.config import DataConfig, MonitorConfig
from fluxora.data import synthetic
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP
from fluxora.monitoring import effect, loop

WINDOWS = 30
CHANGE_DAY = 10  # the change starts at the beginning of the day that window CHANGE_DAY ends
AFFECTED = 10
CHANGES = ("level", "temp x2", "stuck", "clock +1h", "new series")
REAL = Path("/work/shared/data")


def base_config(n_series: int, start: str = "2024-09-21", seed: int = 7) -> DataConfig:
    # 70 days before the first window (4 weeks fit + 2-day window + 20 earlier 2-day windows) + 30.
    return DataConfig(n_series=n_series, start=start, days=110, seed=seed)


def temperature_response(cfg: DataConfig) -> np.ndarray:
    """Each series' heating + cooling term of `shape` (load = level * shape * noise), replayed
    draw for draw from the generator (checked against its temperatures)."""
    data = synthetic.generate(cfg)
    index = pd.date_range(pd.Timestamp(cfg.start, tz="UTC"), periods=cfg.days * 24, freq="h")
    cal = synthetic._Calendar(index, cfg.holidays_country)
    rng = np.random.default_rng(cfg.seed)
    seasonal = np.cos(2 * np.pi * (cal.doy - 15) / 365.25)
    diurnal = 4.0 * np.cos(2 * np.pi * (cal.hour - 3) / 24)
    out = np.empty((cfg.n_series, len(index)))
    for i in range(cfg.n_series):
        mean_temp, annual_amp = rng.uniform(8.0, 16.0), rng.uniform(7.0, 12.0)
        anomaly = synthetic._ar1(rng, len(index), phi=0.995, scale=3.0)
        temp = mean_temp - annual_amp * seasonal - diurnal + anomaly
        rng.uniform(50.0, 500.0)  # level
        heating = rng.uniform(0.015, 0.03) * np.maximum(15.0 - temp, 0.0)
        cooling = rng.uniform(0.01, 0.04) * np.maximum(temp - 22.0, 0.0) ** 1.3
        synthetic._ar1(rng, len(index), phi=0.9, scale=cfg.noise)
        got = data.loc[data[SERIES_ID] == data[SERIES_ID].unique()[i], TEMPERATURE].to_numpy()
        if not np.allclose(got, temp):
            sys.exit("benchmarks/drift.py: the synthetic generator changed; update temperature_response")
        out[i] = heating + cooling
    return out


def inject(data: pd.DataFrame, change: str, at: pd.Timestamp, cfg: DataConfig, response: np.ndarray) -> pd.DataFrame:
    data = data.copy()
    ids = sorted(data[SERIES_ID].unique())
    hit = data[SERIES_ID].isin(ids[:AFFECTED]) & (data[TIMESTAMP] >= at)
    if change == "level":
        data.loc[hit, LOAD] *= 1.15
    elif change == "temp x2":
        # load = level * shape * (1 + noise): adding the response once more doubles its share.
        for i, sid in enumerate(ids[:AFFECTED]):
            rows = data[SERIES_ID] == sid
            late = rows & (data[TIMESTAMP] >= at)
            base = data.loc[rows, LOAD].to_numpy()
            share = response[i] / (response[i] + 1.0)  # rough: the rest of shape is near 1 on average
            data.loc[rows, LOAD] = np.where(late[rows].to_numpy(), base * (1.0 + share), base)
    elif change == "stuck":
        for sid in ids[:AFFECTED]:
            before = data[(data[SERIES_ID] == sid) & (data[TIMESTAMP] < at)][LOAD].iloc[-1]
            data.loc[hit & (data[SERIES_ID] == sid), LOAD] = before
    elif change == "clock +1h":
        # The reading for hour t-1 arrives stamped t.
        data.loc[hit, LOAD] = data.groupby(SERIES_ID)[LOAD].shift(1)[hit]
    elif change == "new series":
        extra = synthetic.generate(DataConfig(n_series=AFFECTED, start=cfg.start, days=cfg.days, seed=cfg.seed + 1))
        extra = extra[extra[TIMESTAMP] >= at].copy()
        extra[SERIES_ID] = "new_" + extra[SERIES_ID].astype(str)
        data = pd.concat([data, extra])
    return data.sort_values([SERIES_ID, TIMESTAMP], ignore_index=True)


def monitor_days(data: pd.DataFrame, ends: list[pd.Timestamp], s: effect.EffectSettings, m: MonitorConfig) -> list[Any]:
    """Per window end: the per-series verdicts and the retrain decision, as the monitor makes them."""
    frames = effect.hourly(data, "DE")
    caches: dict[str, dict[pd.Timestamp, Any]] = {sid: {} for sid in frames}
    days = []
    for end in ends:
        series = {}
        for sid, frame in frames.items():
            visible = frame[frame.index <= end]
            if visible.empty:
                continue
            series[sid] = effect.classify(visible, end, s, min(f.index.min() for f in frames.values()), caches[sid])
        summary = effect.summarize(series, m.drift_share_threshold)
        decision = loop.decide(summary, {}, 10_000, datetime.now(UTC), m.retrain_cooldown_hours, m.retrain_min_new_rows)
        days.append((series, decision))
    return days


def flagged(result: dict[str, Any]) -> bool:
    return bool(result["drifted"]) or result["status"] == "new"


def run(n_series: int, start: str, seed: int) -> None:
    m = MonitorConfig()
    s = effect.settings(m)
    cfg = base_config(n_series, start, seed)
    base = synthetic.generate(cfg)
    last = base[TIMESTAMP].max()
    ends = [last - pd.Timedelta(days=WINDOWS - 1 - i) for i in range(WINDOWS)]
    at = ends[CHANGE_DAY] - pd.Timedelta(days=1) + pd.Timedelta(hours=1)
    started = time.perf_counter()

    stationary = monitor_days(base, ends, s, m)
    cells = [(sid, r) for series, _ in stationary for sid, r in series.items() if r["status"] == "ok"]
    alarms = sum(flagged(r) for _, r in cells)
    retrains = sum(d.retrain for _, d in stationary)
    print(f"synthetic: {n_series} series x {WINDOWS} daily windows ({ends[0]:%Y-%m-%d} .. {ends[-1]:%Y-%m-%d}), ")
    print(f"window {s.window_days} d, fit {s.fit_weeks} weeks, {s.history_windows} earlier windows, k={s.k}")
    print()
    print(f"{'run':<12} {'false alarms':>22} {'detected <=2d':>14} {'delay med/max':>14} {'retrain <=2d':>13}")
    print(
        f"{'no change':<12} {alarms:>5}/{len(cells):<6} = {alarms / max(len(cells), 1):6.2%}"
        f" {'-':>14} {'-':>14} {retrains:>5}/{WINDOWS} days"
    )
    response = temperature_response(cfg)
    for change in CHANGES:
        data = inject(base, change, at, cfg, response)
        days = monitor_days(data, ends, s, m)
        ids = sorted(data[SERIES_ID].unique())
        affected = [i for i in ids if i.startswith("new_")] if change == "new series" else ids[:AFFECTED]
        delays = []
        for sid in affected:
            hit = [k for k in range(CHANGE_DAY, WINDOWS) if sid in days[k][0] and flagged(days[k][0][sid])]
            delays.append(hit[0] - CHANGE_DAY + 1 if hit else None)
        within = sum(1 for d in delays if d is not None and d <= 2)
        found = sorted(d for d in delays if d is not None)
        delay = f"{np.median(found):.0f}/{found[-1]}" if found else "-"
        others = [
            r
            for series, _ in days[CHANGE_DAY:]
            for sid, r in series.items()
            if sid not in affected and r["status"] == "ok"
        ]
        fired = any(days[k][1].retrain for k in (CHANGE_DAY, CHANGE_DAY + 1))
        other_fa = sum(flagged(r) for r in others) / max(len(others), 1)
        print(
            f"{change:<12} {'others ' + format(other_fa, '.2%'):>22} "
            f"{within:>5}/{len(affected):<3} {within / len(affected):5.0%}"
            f" {delay:>14} {'yes' if fired else 'no':>13}"
        )
    print(f"\n{time.perf_counter() - started:.0f} s")


def real() -> None:
    """False alarms on real files: 30 consecutive daily windows at the end of each series and 90
    days earlier, no injected change; public holidays of the files' own countries."""
    m = MonitorConfig()
    s = effect.settings(m)
    files = {
        "uk_meters.csv.gz": ("GB", "Europe/London"),
        "uci_household.csv.gz": ("FR", "UTC"),  # naive local stamps, read as they are
        "simbench_profiles.parquet": ("DE", "UTC"),
    }
    for name, (country, zone) in files.items():
        path = REAL / name
        data = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        for back in (0, 90):
            cells = alarms = 0
            for frame in effect.hourly(data, country, zone).values():
                last = frame[LOAD].last_valid_index() - pd.Timedelta(days=back)
                cache: dict[pd.Timestamp, Any] = {}
                for i in range(WINDOWS):
                    end = last - pd.Timedelta(days=WINDOWS - 1 - i)
                    r = effect.series_effects(frame[frame.index <= end], end, s, cache)
                    if r["status"] == "ok":
                        cells += 1
                        alarms += bool(r["drifted"])
            span = f"last 30 days{f' - {back} d' if back else ''}"
            print(f"real {name:<26} {span:<19} {alarms:>4}/{cells:<5} = {alarms / max(cells, 1):6.2%} false alarms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=40)
    parser.add_argument("--start", default="2024-09-21", help="first day of the synthetic data (110 days)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--real", action="store_true")
    args = parser.parse_args()
    run(args.series, args.start, args.seed)
    if args.real:
        real()
