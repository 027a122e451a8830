"""The gate's last step: finer series (15/30 min) averaged to the model resolution.

Load is a mean power (e.g. MW), so the hourly value is the mean of its quarter-hours; coarser
series were refused by the checks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fluxora.data.frames import codes_of, from_codes, sort_by_series
from fluxora.data.schema import LOAD, SERIES_ID, TEMPERATURE, TIMESTAMP


def to_model_resolution(df: pd.DataFrame, steps: dict[str, int], model_step: int, extras: list[str]) -> pd.DataFrame:
    """The output table: one row per series and model step, series ids as strings."""
    fine = [sid for sid, step in steps.items() if step < model_step]
    if fine:
        is_fine = df[SERIES_ID].isin(fine).to_numpy()
        part = df.loc[is_fine]
        bucket = part[TIMESTAMP].dt.floor(pd.Timedelta(model_step))
        values = [LOAD, TEMPERATURE, *extras]
        agg = part[values].groupby([codes_of(part), bucket.to_numpy()], sort=False).mean().reset_index()
        agg.columns = ["_code", TIMESTAMP, *values]
        agg[TIMESTAMP] = pd.to_datetime(agg[TIMESTAMP], utc=True)
        agg[SERIES_ID] = from_codes(agg["_code"].to_numpy(), df)
        df = sort_by_series(pd.concat([df.loc[~is_fine], agg[df.columns]], ignore_index=True))
    ids = np.asarray(df[SERIES_ID].cat.categories.astype(str), dtype=object)[codes_of(df)]
    columns = {SERIES_ID: ids, TIMESTAMP: df[TIMESTAMP].array}
    return pd.DataFrame(columns | {c: df[c].to_numpy() for c in (LOAD, TEMPERATURE, *extras)})
