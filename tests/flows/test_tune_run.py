"""`fluxora tune` then `fluxora run` with the overrides it printed (a real Prefect flow run): the
run accepts them and registers a model trained with the tuned settings."""

from __future__ import annotations

import pytest

from conftest import TINY_OVERRIDES
from fluxora.config import compose
from fluxora.paths import Home

pytestmark = pytest.mark.integration

OVERRIDES = [*TINY_OVERRIDES, "model=xgboost", "train.promotion_margin=-1"]  # tiny data: promote what trains
TUNE = ["tune.trials=2", "tune.windows=2", "tune.space.n_estimators=[10,40]"]


def test_fluxora_run_takes_the_printed_overrides(tmp_path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from fluxora import registry
    from fluxora.cli import main

    home = Home(tmp_path / "home")
    monkeypatch.setenv("FLUXORA_HOME", str(home.root))
    assert main(["tune", *OVERRIDES, *TUNE]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert printed and all(o.startswith("model.") for o in printed)
    assert main(["tune", "--show"]) == 0
    assert capsys.readouterr().out.split() == printed

    with prefect_test_harness(server_startup_timeout=180):
        assert main(["run", *OVERRIDES, *printed]) == 0
    cfg = compose([*OVERRIDES, *printed])
    champion = registry.champion(home, cfg.train.registered_model_name)
    assert champion is not None
    params = registry.configure(home).get_run(champion["run_id"]).data.params
    assert {o.split("=")[0]: params[o.split("=")[0]] for o in printed} == {
        o.split("=")[0]: str(getattr(cfg.model, o.split("=")[0].removeprefix("model."))) for o in printed
    }
