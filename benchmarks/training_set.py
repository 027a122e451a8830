"""Training set through Feast against a bare `pandas.merge_asof`, on the same data, in one run.

100 series x 1 year hourly: one entity row per (series, hour) (~876k rows) and the 21 scalar
features of `load_forecast_v2` (load lags and rolling statistics, observed weather, calendar;
three feature views with the repo's 2-hour TTL). Each contender runs `--repeat` times in its own
fresh process, so its peak RSS is its own (imports included); the data and offline sources are
prepared once. Timed: the retrieval only (Feast: `get_historical_features(...).to_df()` on an open
store; merge_asof: reading the three parquet files, sorting and joining); imports are not.

    .venv/bin/python benchmarks/training_set.py [--series 100] [--days 365] [--repeat 3] [--stock]

`--stock` also times Feast's stock (ibis) DuckDB offline store, for reference (slow).
Goal (issue 4): Feast <= 3x merge_asof and <= 2 GB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

VIEWS = {
    "load_stats": [
        "load_last",
        "load_lag_1h",
        "load_lag_24h",
        "load_lag_168h",
        "load_mean_6h",
        "load_mean_168h",
        "load_std_24h",
        "load_min_24h",
        "load_max_24h",
    ],
    "weather": [
        "temperature",
        "heating_degrees",
        "cooling_degrees",
        "heating_degree_hours_24h",
        "cooling_degree_hours_24h",
        "temp_min_24h",
        "temp_max_24h",
    ],
    "calendar": ["hour", "day_of_week", "day_of_year", "is_holiday", "is_working_day"],
}
TTL_HOURS = 2  # the feature views' TTL (feature_repo/definitions.py)


def prepare(home_dir: Path, n_series: int, days: int) -> None:
    """Synthetic data -> the three offline sources, the rendered store config, `feast apply`, entity rows."""
    import pandas as pd

    from fluxora.config import DataConfig, FeaturesConfig, InfraConfig
    from fluxora.data.schema import SERIES_ID, TIMESTAMP
    from fluxora.data.synthetic import generate
    from fluxora.features import store as fs
    from fluxora.features.build import calendar_table, load_stats, origin_states
    from fluxora.features.names import EVENT_TIMESTAMP
    from fluxora.features.weather import forecast_states, observed_weather
    from fluxora.paths import Home
    from fluxora.runtime import prepare as prepare_home

    home = prepare_home(Home(home_dir))
    data = generate(DataConfig(n_series=n_series, days=days, start="2024-01-01"))
    cfg = FeaturesConfig()
    fs.write_offline(load_stats(data), home, "load_stats")
    fs.write_offline(observed_weather(data, cfg.heating_base_c, cfg.cooling_base_c), home, "weather")
    fs.write_offline(calendar_table(data, cfg.holiday_country, cfg.timezone), home, "calendar")
    # `feast apply` reads every view's source schema; the array views are not benchmarked.
    fs.write_offline(origin_states(data.head(24 * 10), cfg), home, "origin_state")
    fs.write_offline(forecast_states(None, 48, 36), home, "weather_forecast")
    fs.write_store_config(home, InfraConfig())
    fs.apply(fs.open_store(home))
    entity = pd.DataFrame({SERIES_ID: data[SERIES_ID].astype(str), EVENT_TIMESTAMP: data[TIMESTAMP]})
    entity.to_parquet(home_dir / "entity.parquet", index=False)


def feast_contender(home_dir: Path, stock: bool) -> Callable[[], int]:
    """Open the store (imports and registry load are set-up, not timed); return the retrieval."""
    import pandas as pd

    import fluxora.features.offline_store  # noqa: F401 - Feast imports it on first use otherwise
    from fluxora.features import store as fs
    from fluxora.paths import Home

    store = fs.open_store(Home(home_dir), offline_store={"type": "duckdb"} if stock else None)
    entity = pd.read_parquet(home_dir / "entity.parquet")
    refs = [f"{view}:{name}" for view, names in VIEWS.items() for name in names]
    store.get_feature_view("load_stats")  # loads the registry

    def run() -> int:
        out = store.get_historical_features(entity_df=entity, features=refs).to_df()
        return int(out["load_last"].notna().sum())

    return run


def merge_asof_contender(home_dir: Path) -> Callable[[], int]:
    """The same join by hand: read each view's parquet, `merge_asof` backward within the TTL."""
    import pandas as pd

    from fluxora.data.schema import SERIES_ID
    from fluxora.features import store as fs
    from fluxora.features.names import EVENT_TIMESTAMP
    from fluxora.paths import Home

    home = Home(home_dir)
    entity = pd.read_parquet(home_dir / "entity.parquet")

    def run() -> int:
        out = entity.sort_values(EVENT_TIMESTAMP, kind="stable")
        for view, names in VIEWS.items():
            table = pd.read_parquet(fs.table_path(home, view), columns=[SERIES_ID, EVENT_TIMESTAMP, *names])
            out = pd.merge_asof(
                out,
                table.sort_values(EVENT_TIMESTAMP, kind="stable"),
                on=EVENT_TIMESTAMP,
                by=SERIES_ID,
                direction="backward",
                tolerance=pd.Timedelta(hours=TTL_HOURS),
            )
        return int(out["load_last"].notna().sum())

    return run


def worker(contender: str, home_dir: Path) -> None:
    """Run one contender once in this process; print seconds, peak RSS and a checksum as JSON."""
    from fluxora.paths import Home
    from fluxora.runtime import prepare as prepare_home

    prepare_home(Home(home_dir))
    if contender == "merge_asof":
        run = merge_asof_contender(home_dir)
    else:
        run = feast_contender(home_dir, stock=contender == "feast_stock")
    start = time.perf_counter()
    rows = run()
    seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb, "rows_with_features": rows}))


def measure(contender: str, home_dir: Path, repeat: int) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--worker", contender, "--home", str(home_dir)],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if len({r["rows_with_features"] for r in runs}) != 1:
        raise RuntimeError(f"{contender}: runs disagree")
    return {
        "median_s": statistics.median(r["seconds"] for r in runs),
        "peak_rss_mb": max(r["rss_mb"] for r in runs),
        "rows_with_features": runs[0]["rows_with_features"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stock", action="store_true", help="also time Feast's stock DuckDB offline store")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, Path(args.home))
        return
    with tempfile.TemporaryDirectory(prefix="fluxora-bench-") as tmp:
        home_dir = Path(tmp)
        prepare(home_dir, args.series, args.days)
        n_features = sum(len(v) for v in VIEWS.values())
        print(f"{args.series} series x {args.days} days hourly, {n_features} features in {len(VIEWS)} views")
        contenders = ["merge_asof", "feast_asof"] + (["feast_stock"] if args.stock else [])
        results = {c: measure(c, home_dir, args.repeat if c != "feast_stock" else 1) for c in contenders}
    base = results["merge_asof"]
    print(f"{'contender':<12} {'median s':>9} {'ratio':>6} {'peak RSS MB':>12} {'rows w/ features':>17}")
    for name, r in results.items():
        ratio = r["median_s"] / base["median_s"]
        print(f"{name:<12} {r['median_s']:9.2f} {ratio:5.1f}x {r['peak_rss_mb']:12.0f} {r['rows_with_features']:17d}")
    if len({r["rows_with_features"] for r in results.values()}) != 1:
        raise SystemExit("contenders returned different numbers of rows with features")
    feast = results["feast_asof"]
    print(
        f"Feast (ASOF store) / merge_asof: {feast['median_s'] / base['median_s']:.2f}x (goal <= 3x), "
        f"peak RSS {feast['peak_rss_mb']:.0f} MB (goal <= 2048 MB)"
    )


if __name__ == "__main__":
    main()
