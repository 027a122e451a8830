"""The deployments' typed parameters: their schema matches conf/, each becomes the Hydra override
that changes the run, and a bad value is refused with a clear message."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from conftest import TINY_OVERRIDES
from fluxora.config import _group_options, compose, conf_dir
from fluxora.errors import ConfigError


def test_model_choices_are_conf_model_options() -> None:
    from flows.parameters import ModelName

    assert sorted(typing.get_args(ModelName)) == sorted(_group_options(conf_dir(), "model"))


def test_typed_parameters_become_overrides_that_change_the_config() -> None:
    from flows.parameters import as_overrides

    overrides = as_overrides(
        ["model=xgboost", "train.horizon=48", "data.days=45"],
        model="ridge",
        horizon=12,
        data_path="data/load.csv",
        series=["north", "it's"],
    )
    cfg = compose(overrides)
    assert cfg.model.name == "ridge" and cfg.train.horizon == 12  # the typed value wins over the override
    assert cfg.data.source == "file" and cfg.data.format == "csv" and cfg.data.path == "data/load.csv"
    assert cfg.data.series == ["north", "it's"] and cfg.data.days == 45
    assert compose(as_overrides([], data_path="data/x.parquet")).data.format == "parquet"
    # A data group chosen in the overrides stays; unset parameters change nothing.
    assert compose(as_overrides(["data=parquet"], data_path="data/folder")).data.format == "parquet"
    assert as_overrides(["a.b=1"]) == ["a.b=1"] and as_overrides(None) == []
    with pytest.raises(ConfigError, match="series"):
        as_overrides([], series=["ok", " "])


def test_flows_refuse_bad_parameter_values() -> None:
    from prefect.exceptions import ParameterTypeError

    from flows.pipeline import ingest_flow, train_flow

    with pytest.raises(ParameterTypeError, match="model"):
        train_flow.validate_parameters({"model": "xgbost"})
    with pytest.raises(ParameterTypeError, match="horizon"):
        train_flow.validate_parameters({"horizon": 0})
    with pytest.raises(ParameterTypeError, match="series"):
        ingest_flow.validate_parameters({"series": "series_000"})
    valid = train_flow.validate_parameters({"model": "ridge", "horizon": "12"})
    assert valid["model"] == "ridge" and valid["horizon"] == 12
    with pytest.raises(ParameterTypeError, match="horizon: 'tomorrow' is neither"):
        train_flow.validate_parameters({"horizon": "tomorrow"})
    assert train_flow.validate_parameters({"horizon": " 90min "})["horizon"] == "90min"


def test_horizon_parameter_takes_a_duration_as_train_horizon_does() -> None:
    """`-p horizon=24h` means what `train.horizon=24h` means: a day at the data's resolution."""
    from flows.parameters import as_overrides

    assert compose(as_overrides([], horizon="24h")).train.horizon == "24h"
    assert compose(as_overrides(["train.horizon=48"], horizon="90min")).train.horizon == "90min"
    assert compose(as_overrides([], horizon="36")).train.horizon == 36
    with pytest.raises(ConfigError, match="horizon: 'soon'"):
        as_overrides([], horizon="soon")


def test_series_subset_keeps_only_those_series(tmp_path: Path) -> None:
    from fluxora import steps
    from fluxora.paths import Home

    home = Home(tmp_path).ensure()
    kept = steps.ingest(compose([*TINY_OVERRIDES, "data.n_series=3", "data.series=[series_002,series_000]"]), home)
    assert kept.series == 2
    with pytest.raises(ConfigError, match=r"data.series: 'nope' is not in the data \(3 series: series_000"):
        steps.ingest(compose([*TINY_OVERRIDES, "data.n_series=3", "data.series=[series_000,nope]"]), home)
