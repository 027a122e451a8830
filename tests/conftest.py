"""Shared fixtures. Every test session gets its own FLUXORA_HOME; the repo's .fluxora is never touched."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fault_record import RECORD_ENV, SUMMARY_ENV, FaultRecorder, append, summarize

from fluxora.config import FluxoraConfig, compose
from fluxora.paths import HOME_ENV, Home

# Small enough for seconds, long enough for a week of history, training origins and backtest windows.
TINY_OVERRIDES = [
    "data.n_series=2",
    "data.days=45",
    "train.horizon=24",  # steps: tests count in them (the default is 24h, the same 24 steps at hourly data)
    "backtest.windows=4",
    "train.min_train_days=14",
    "train.origin_stride_hours=6",
    "model.n_estimators=40",
    "model.quantile_estimators=30",
    "model.learning_rate=0.15",
    "model.neural_layers=1",
    "model.neural_units=16",
    "model.neural_epochs=4",
    "model.neural_patience=2",
    "monitor.reference_days=14",
    "monitor.current_days=7",
]


def train_test_batches(cfg: FluxoraConfig, horizon: int) -> tuple[Any, Any]:
    """Training origins before the last 5 days of the synthetic data of `cfg`; test origins at 4
    later times (23 h apart), every series."""
    import numpy as np

    from fluxora.data.gate import run_gate
    from fluxora.data.synthetic import generate
    from fluxora.models.panel import Panel

    data = run_gate(generate(cfg.data), cfg.data.gate, cfg.data.freq, cfg.data.resolution).data
    panel = Panel.from_frame(data)
    cut = min(s.end for s in panel.series.values()) - np.timedelta64(5 * 24, "h")
    seen = panel.until(cut)
    train = seen.batch(seen.training_origins(horizon, 6, 168, 24), horizon, 168, 24)
    test_origins = cut + np.arange(4) * np.timedelta64(23, "h")
    return train, panel.batch({sid: test_origins for sid in panel.series}, horizon, 168, 24)


POSTGRES_ENV = "FLUXORA_TEST_POSTGRES_URL"


@contextmanager
def postgres_schema(prefix: str) -> Iterator[tuple[str, str]]:
    """A fresh schema in the test PostgreSQL, dropped with everything in it afterwards; yields
    (the database URL, the schema name). Skips the test when FLUXORA_TEST_POSTGRES_URL is unset."""
    from sqlalchemy import text

    from fluxora import servicedb as db

    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (CI sets postgresql://postgres@127.0.0.1:5432/test)")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = db.make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield base, schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def pytest_configure(config: pytest.Config) -> None:
    session_home = Path(tempfile.mkdtemp(prefix="fluxora-test-home-"))
    os.environ[HOME_ENV] = str(session_home)
    # One Prefect home for the session: its database is created once (see PITFALLS).
    os.environ["PREFECT_HOME"] = str(session_home / "prefect")


# --- the fault-and-fuzz suite's recorder (tests marked `fault`; see tests/fault_record.py) ---------

_FAULT_RECORDS = pytest.StashKey[list[dict[str, Any]]]()


def _keep(config: pytest.Config, record: dict[str, Any]) -> None:
    config.stash.setdefault(_FAULT_RECORDS, []).append(record)
    if path := os.environ.get(RECORD_ENV):
        append(Path(path), record)


@pytest.fixture
def fault_record(request: pytest.FixtureRequest) -> Iterator[FaultRecorder]:
    """`fault_record(duplicate_versions=…)`, `fault_record.responses(r, refused=True)`: this test's
    figures for the suite's summary, written when it ends, also when an assertion failed (so
    record before asserting)."""
    node = request.node
    if node.get_closest_marker("fault") is None:
        raise pytest.UsageError(f"{node.nodeid} records fault figures but is not marked `fault`")
    recorder = FaultRecorder()
    yield recorder
    if recorder.figures:
        _keep(request.config, {"test": node.nodeid, "figures": dict(recorder.figures)})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if item.get_closest_marker("fault") is not None:
        # One outcome per test: the call's, or setup's when the call never ran, or a failed teardown.
        ended = report.when == "call" or (report.when == "setup" and not report.passed) or report.failed
        if ended:
            known = report.skipped and hasattr(report, "wasxfail")  # a known failure, marked xfail
            _keep(item.config, {"test": item.nodeid, "outcome": "xfailed" if known else report.outcome})
    return report


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The suite's figures at the end of any run that included `fault` tests (so CI's log has them)."""
    records = config.stash.get(_FAULT_RECORDS, [])
    if records and os.environ.get(SUMMARY_ENV) != "0":
        terminalreporter.section("fault and fuzz suite")
        terminalreporter.write_line(summarize(records).text)


@pytest.fixture(scope="session")
def tiny_cfg() -> FluxoraConfig:
    return compose(TINY_OVERRIDES)


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory, tiny_cfg: FluxoraConfig) -> Iterator[Home]:
    """A FLUXORA_HOME where the whole pipeline ran (library functions, no Prefect) on tiny data."""
    from fluxora import steps
    from fluxora.runtime import prepare

    home = prepare(Home(tmp_path_factory.mktemp("trained-home")))
    for step in (steps.ingest, steps.validate, steps.features, steps.train, steps.monitor):
        step(tiny_cfg, home)
    yield home


@pytest.fixture(scope="session")
def champion_dir(tiny_cfg: FluxoraConfig, trained_home: Home, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The champion's model folder, downloaded by alias with MLflow directly (not the service's code)."""
    import mlflow

    from fluxora.models.native import CONTRACT_FILE, MODEL_FILE

    # An explicit client: a bare `models:/` URI would resolve against the process-global registry.
    uri, name = trained_home.mlflow_tracking_uri, tiny_cfg.train.registered_model_name
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias(name, "champion").version
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(name, version),
            dst_path=str(tmp_path_factory.mktemp("champion")),
            tracking_uri=uri,
        )
    )
    dirs = [p.parent for p in local.rglob(CONTRACT_FILE) if (p.parent / MODEL_FILE).is_file()]
    assert len(dirs) == 1
    return dirs[0]
