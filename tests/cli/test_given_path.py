"""`fluxora run data.path=/elsewhere/file.csv`: a path typed on one's own command line is allowed for
that run; paths from elsewhere (deployments, params.yaml) keep the `data.roots` check."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fluxora.cli.jobs import with_given_path_allowed
from fluxora.config import compose
from fluxora.data.errors import UnsafePathError
from fluxora.data.ingest import ingest
from fluxora.paths import project_root

CSV = "series_id,timestamp,load\nm1,2024-01-01 00:00,1.5\nm1,2024-01-01 01:00,2.5\n"


def _file(folder: Path, name: str = "load.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(CSV)
    return path


def test_a_file_outside_the_roots_is_read_when_typed_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path / "it's elsewhere")  # a quote and a space: the roots override quotes them
    given = ["data=csv", f'data.path="{path}"']
    with pytest.raises(UnsafePathError, match="outside the allowed data roots"):  # the check itself stays
        ingest(compose(given).data, tmp_path / "raw.parquet", project_root())
    allowed = with_given_path_allowed(given)
    assert allowed[: len(given)] == given and allowed[-1].startswith("data.roots=")
    assert "is allowed for this run" in capsys.readouterr().err
    data = compose(allowed).data
    assert data.roots[-1] == str(path.parent.resolve()) and str((project_root() / "data").resolve()) in data.roots
    ingest(data, tmp_path / "raw.parquet", project_root())
    assert pd.read_parquet(tmp_path / "raw.parquet")["load"].tolist() == [1.5, 2.5]


def test_a_glob_allows_its_fixed_folder(tmp_path: Path) -> None:
    _file(tmp_path / "meters", "a.csv")
    allowed = with_given_path_allowed(["data=csv", f"data.path={tmp_path}/meters/*.csv"])
    assert compose(allowed).data.roots[-1] == str((tmp_path / "meters").resolve())


def test_nothing_changes_inside_the_roots_with_explicit_roots_or_without_a_path(tmp_path: Path) -> None:
    path = _file(tmp_path / "x", "load.csv")
    for overrides in (
        ["data=csv", "data.path=data/sample.csv"],  # inside the project's data/ (need not exist)
        ["data=csv", f"data.path={path}", "data.roots=[data]"],  # the user chose the roots: the check applies
        ["train.horizon=24"],
    ):
        assert with_given_path_allowed(overrides) == overrides
