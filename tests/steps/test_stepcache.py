"""Step results cached on (data version, config hash): reuse when nothing changed, redo otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import TINY_OVERRIDES
from fluxora import steps
from fluxora.config import compose
from fluxora.paths import Home
from fluxora.runtime import prepare
from fluxora.steps import cache as stepcache


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = prepare(Home(tmp_path / "home"))
    steps.ingest(compose(TINY_OVERRIDES), home)
    return home


def test_validate_reuses_its_outputs_only_while_data_config_and_files_are_unchanged(home: Home) -> None:
    cfg = compose(TINY_OVERRIDES)
    first = steps.validate(cfg, home)
    stamp = home.validated_data.stat().st_mtime_ns
    again = steps.validate(cfg, home)
    assert again.outputs() == first.outputs() | {"cached": True}
    assert home.validated_data.stat().st_mtime_ns == stamp, "a cached step rewrote its output"

    other = compose([*TINY_OVERRIDES, "data.gate.negative=repair"])
    assert "cached" not in steps.validate(other, home).outputs(), "another gate config reused the result"
    assert "cached" not in steps.validate(cfg, home).outputs()  # and back: the record is per key

    (home.data / "quarantine.parquet").unlink()
    assert "cached" not in steps.validate(cfg, home).outputs(), "a missing output was not redone"

    os.utime(home.validated_data, ns=(stamp, stamp + 10**9))  # rewritten by someone else
    assert "cached" not in steps.validate(cfg, home).outputs()

    steps.ingest(compose([*TINY_OVERRIDES, "data.seed=7"]), home)  # new data version
    assert "cached" not in steps.validate(cfg, home).outputs()


def test_features_cached_still_reloads_the_online_store(home: Home) -> None:
    from fluxora.features import store as fs

    cfg = compose(TINY_OVERRIDES)
    steps.validate(cfg, home)
    first = steps.features(cfg, home)
    (home.feast_repo / "online.db").unlink()  # the online store lost everything (e.g. Redis restarted)
    again = steps.features(cfg, home)
    assert again.outputs()["cached"] is True
    assert again.outputs()["materialized_until"] == first.outputs()["materialized_until"]
    series = fs.offline_latest(home)["series_id"].tolist()
    online = fs.online(fs.open_store(home), series, cfg.features.feature_service)
    assert all(ts is not None for ts in online[fs.ONLINE_TIMESTAMP]), "the cached step did not re-materialize"

    longer = compose([*TINY_OVERRIDES, "features.temp_history_hours=12"])
    assert "cached" not in steps.features(longer, home).outputs()


def test_an_unfinished_record_is_never_trusted(tmp_path: Path) -> None:
    home = Home(tmp_path)
    key = stepcache.Key("d1", "c1")
    out = tmp_path / "out.bin"
    out.write_bytes(b"x")
    assert stepcache.lookup(home, "s", key) is None
    stepcache.record(home, "s", key, {"n": 1}, [out])
    assert stepcache.lookup(home, "s", key) == {"n": 1}
    assert stepcache.lookup(home, "s", stepcache.Key("d2", "c1")) is None
    (home.root / "cache" / "steps" / "s.json").write_text('{"key": ')  # torn write: not JSON
    assert stepcache.lookup(home, "s", key) is None
