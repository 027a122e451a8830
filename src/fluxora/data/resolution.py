"""The model resolution: the step a model counts in (15 min, 30 min, an hour), standard library only.

Configuration keeps the names users know in hours (`features.load_history_hours`,
`backtest.step_hours`, ...); everything that indexes arrays counts in steps of the model
resolution, converted here: a week of history is 168 steps at hourly data, 336 at 30 min and
672 at 15 min. Horizons are given as a duration ("24h", "90min") or a whole number of steps
(at hourly data steps are hours, so old configurations and requests mean the same).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HOUR_NS = 3_600_000_000_000
MINUTE_NS = 60_000_000_000
DAY_NS = 24 * HOUR_NS

_DURATION = re.compile(r"^\s*(\d+)\s*(min|minutes?|m|h|hours?|d|days?)\s*$", re.IGNORECASE)
_UNIT_NS = {"min": MINUTE_NS, "m": MINUTE_NS, "h": HOUR_NS, "d": DAY_NS}


def duration_ns(text: str) -> int:
    """Nanoseconds of a duration like "15min", "30min", "h", "1h", "24h", "2d"; ValueError otherwise."""
    value = text.strip()
    if value.lower() in ("h", "hour"):
        return HOUR_NS
    if value.lower() in ("min", "t"):
        return MINUTE_NS
    match = _DURATION.match(value)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 24h, 90min, 2d)")
    unit = match.group(2).lower()
    return int(match.group(1)) * _UNIT_NS["m" if unit.startswith("m") else unit[0]]


@dataclass(frozen=True)
class Resolution:
    """A model's step. Hours divide into whole steps (steps of 1-60 minutes dividing an hour)."""

    step_ns: int = HOUR_NS

    def __post_init__(self) -> None:
        if self.step_ns <= 0 or HOUR_NS % self.step_ns != 0 or self.step_ns % MINUTE_NS != 0:
            raise ValueError(
                f"unsupported model resolution {self.step_ns // MINUTE_NS} min: "
                "use whole minutes that divide an hour (15min, 30min, h)"
            )

    @classmethod
    def parse(cls, text: str) -> Resolution:
        """From a name: "h", "60min", "30min", "15min"."""
        try:
            return cls(duration_ns(text))
        except ValueError as exc:
            raise ValueError(f"invalid resolution {text!r}: {exc}") from None

    @property
    def name(self) -> str:
        """ "h" for hourly (what older contracts mean), else e.g. "30min"."""
        return "h" if self.step_ns == HOUR_NS else f"{self.step_ns // MINUTE_NS}min"

    @property
    def per_hour(self) -> int:
        return HOUR_NS // self.step_ns

    @property
    def day(self) -> int:
        """Steps in a (24-hour) day: 24 hourly, 48 at 30 min, 96 at 15 min."""
        return 24 * self.per_hour

    @property
    def week(self) -> int:
        return 168 * self.per_hour

    def steps(self, hours: float) -> int:
        """Whole steps in `hours` (a history window, a stride, a gap)."""
        return round(hours * self.per_hour)

    def horizon(self, value: int | str) -> int:
        """Steps of a horizon given as steps (int or "96") or a duration ("24h", "90min")."""
        if isinstance(value, bool):
            raise ValueError(f"invalid horizon {value!r}: give steps (e.g. 24) or a duration (e.g. 24h)")
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text.isdigit():
            return int(text)
        try:
            span = duration_ns(text)
        except ValueError:
            raise ValueError(
                f"invalid horizon {value!r}: give steps (e.g. 24) or a duration (e.g. 24h, 90min)"
            ) from None
        if span % self.step_ns != 0:
            raise ValueError(f"invalid horizon {value!r}: not a whole number of {self.name} steps")
        return span // self.step_ns


HOURLY = Resolution()
