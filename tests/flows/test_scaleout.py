"""Scale-out: per-series work through Prefect's Dask task runner gives what the serial path gives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import TINY_OVERRIDES
from fluxora.config import FluxoraConfig, compose
from fluxora.fanout import SERIAL, chunks

# Three series in groups of one: Prophet's per-series units really are split across the cluster.
OVERRIDES = [
    *TINY_OVERRIDES,
    "data.n_series=3",
    "backtest.windows=3",
    "backtest.refit=every",
    "backtest.weather=forecast",  # seeded noise: the same only if units are cut from the same batches
    "model.prophet_max_iter=60",
    "infra.series_per_task=1",
]
MODELS = ["seasonal_naive_daily", "seasonal_naive_weekly", "ridge", "xgboost", "prophet"]


def test_serial_maps_lazily_in_order() -> None:
    seen: list[int] = []

    def square(x: int) -> int:
        seen.append(x)
        return x * x

    results = SERIAL.map(square, iter([3, 1, 2]))
    assert seen == []  # nothing runs before it is asked for
    assert list(results) == [9, 1, 4]
    assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]


def test_default_infra_stays_serial() -> None:
    from flows.fanout import fan_out

    cfg = compose()
    assert cfg.infra.task_runner == "serial"
    with fan_out(cfg.infra) as per_series:
        assert per_series is SERIAL


def test_dask_infra_composes_with_a_scheduler_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.fanout import dask_runner

    monkeypatch.setenv("FLUXORA_DASK_ADDRESS", "tcp://127.0.0.1:8786")
    infra = compose(["infra=dask"]).infra
    assert (infra.task_runner, infra.dask_address) == ("dask", "tcp://127.0.0.1:8786")
    runner = dask_runner(infra)  # not started: no connection is made here
    assert runner.address == "tcp://127.0.0.1:8786" and not runner.cluster_kwargs
    monkeypatch.delenv("FLUXORA_DASK_ADDRESS")
    local = dask_runner(compose(["infra=dask"]).infra)
    assert local.address is None and local.cluster_kwargs["n_workers"] == 2


@pytest.fixture(scope="module")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def _leaderboard_without_timings(board: dict[str, Any]) -> str:
    models = [{k: v for k, v in e.items() if not k.endswith("_seconds")} for e in board["models"]]
    return json.dumps(models, sort_keys=True)


@pytest.mark.integration
def test_dask_backtest_equals_serial(prefect_harness: None) -> None:
    from prefect import flow
    from prefect_dask import DaskTaskRunner

    from flows.fanout import fan_out
    from fluxora.data.gate import run_gate
    from fluxora.data.synthetic import generate
    from fluxora.models import backtest as bt
    from fluxora.models.panel import Panel

    cfg: FluxoraConfig = compose([*OVERRIDES, "infra=dask"])
    panel = Panel.from_frame(run_gate(generate(cfg.data), cfg.data.gate, cfg.data.freq, cfg.data.resolution).data)
    spec = bt.resolve(cfg, panel)

    def board(per_series: Any) -> dict[str, Any]:
        result = bt.run(panel, cfg, MODELS, spec, fan_out=per_series)
        return bt.leaderboard(result, fan_out=per_series, series_per_task=cfg.infra.series_per_task)

    serial = board(SERIAL)
    submitted: list[str] = []

    @flow(name="scaleout-test")
    def on_dask() -> dict[str, Any]:
        # A real LocalCluster, small: one worker process-free with two threads.
        runner = DaskTaskRunner(cluster_kwargs={"n_workers": 1, "threads_per_worker": 2, "processes": False})
        with fan_out(cfg.infra, runner) as per_series:
            submitted.append(type(per_series).__name__)
            return board(per_series)

    distributed = on_dask()
    assert submitted == ["TaskRunnerFanOut"]
    assert [e["model"] for e in distributed["models"]] == [e["model"] for e in serial["models"]]
    assert _leaderboard_without_timings(distributed) == _leaderboard_without_timings(serial)
    assert len(serial["models"][0]["per_series"]) == 3


def test_feature_batches_equal_the_whole_tables(tmp_path: Path) -> None:
    """Batches cut from the table in memory, and batches read from the validated file (the
    features step: the table is never in memory at once), give the whole tables; so does the
    panel read from the file in batches."""
    import numpy as np
    import pyarrow as pa

    from fluxora.data import io
    from fluxora.data.gate import run_gate
    from fluxora.data.schema import SERIES_ID
    from fluxora.data.synthetic import generate
    from fluxora.features.build import feature_batches, feature_tables
    from fluxora.models.panel import Panel

    cfg = compose([*TINY_OVERRIDES, "data.n_series=3", "features.series_per_batch=2"])
    data = run_gate(generate(cfg.data), cfg.data.gate, cfg.data.freq, cfg.data.resolution).data
    whole = feature_tables(data, cfg.features)
    path = tmp_path / "validated.parquet"
    io.write_parquet(data, path)  # as the gate writes it: series in order, time order within a series
    from_file = [f for f, _ in io.SeriesBatches(path, 2, SERIES_ID)]
    for batches in (list(feature_batches(data, cfg.features)), list(feature_batches(from_file, cfg.features))):
        assert len(batches) == 2
        for view, table in whole.items():
            if view == "weather_forecast":
                continue
            joined = pa.concat_tables([b[view] for b in batches])
            assert joined.equals(table.cast(joined.schema)), view
    one, batched = Panel.from_frame(data), Panel.from_frames(f for f, _ in io.SeriesBatches(path, 1, SERIES_ID))
    assert list(one.series) == list(batched.series) and one.resolution == batched.resolution
    for sid, s in one.series.items():
        b = batched.series[sid]
        assert s.start == b.start and s.step == b.step
        np.testing.assert_array_equal(s.load, b.load)
        np.testing.assert_array_equal(s.temp, b.temp)


def test_sample_origins_is_seeded_uniform_and_bounded() -> None:
    import numpy as np

    from fluxora.models.panel import sample_origins

    base = np.datetime64("2024-01-01T00", "ns")
    origins = {f"s{i}": base + np.arange(100 * (i + 1)) * np.timedelta64(1, "h") for i in range(3)}
    assert sample_origins(origins, 0, seed=1) is origins
    assert sample_origins(origins, 10_000, seed=1) is origins
    sampled = sample_origins(origins, 120, seed=1)
    assert sum(len(v) for v in sampled.values()) == 120
    assert set(sampled) == set(origins)
    for sid, stamps in sampled.items():
        assert np.isin(stamps, origins[sid]).all() and (np.diff(stamps) > np.timedelta64(0, "ns")).all()
    assert all((sampled[s] == again).all() for s, again in sample_origins(origins, 120, seed=1).items())
    # Proportional in expectation: the longest series (300 origins of 600) gets about half.
    assert 40 <= len(sampled["s2"]) <= 80


@pytest.mark.parametrize(("step_min", "stride"), [(60, 1), (60, 6), (15, 1), (30, 24)])
def test_sampled_training_origins_equal_sampling_every_candidate(step_min: int, stride: int) -> None:
    """The grid-based draw gives exactly the candidates (and the sample) of filtering every
    step's stamp by the stride, for starts on and off the stride, off the step, and too short."""
    import numpy as np

    from fluxora.data.resolution import Resolution
    from fluxora.models.panel import Panel, Series, sample_origins

    step = np.timedelta64(step_min, "m").astype("timedelta64[ns]")
    starts = ["2024-01-01T00:00", "2024-01-01T03:00", "2024-01-02T05:45", "2024-01-01T00:07", "2024-01-03T01:30"]
    lengths = [900, 700, 1_000, 800, 40]  # the last is shorter than a history and a horizon
    series = {
        f"s{i}": Series(np.datetime64(t, "ns"), np.zeros(n), np.zeros(n), step)
        for i, (t, n) in enumerate(zip(starts, lengths, strict=True))
    }
    panel = Panel(series, None, Resolution(int(step.astype("int64"))))
    horizon, lh, lt = 24, 168, 24

    def every_candidate() -> dict[str, np.ndarray]:
        out = {}
        for sid, s in series.items():
            first, last = max(lh, lt) - 1, len(s.load) - 1 - horizon
            if last >= first:
                stamps = s.start + np.arange(first, last + 1) * s.step
                out[sid] = stamps[stamps.astype("int64") % (stride * 3_600_000_000_000) == 0]
        return out

    reference = every_candidate()
    grid = panel.training_origins(horizon, stride, lh, lt)
    assert list(grid) == list(reference)
    assert all(np.array_equal(grid[sid], reference[sid]) for sid in reference)
    assert len(grid["s3"]) == 0  # a start off the step's grid (00:07) is never on the stride
    for most in (0, 37, 10**9):
        drawn = panel.sampled_training_origins(horizon, stride, lh, lt, most, seed=3)
        expected = sample_origins(reference, most, seed=3)
        assert list(drawn) == list(expected)
        assert all(np.array_equal(drawn[sid], expected[sid]) for sid in expected)
