"""What every step returns: a small frozen record, read by attribute and printed as JSON."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class StepResult:
    """Base of the steps' results. `step` names the step (a class constant, not a field)."""

    step: ClassVar[str] = ""

    def outputs(self) -> dict[str, Any]:
        """The result's fields as plain data (what the step cache records and `fluxora stage`
        prints); `cached` only when the step reused an earlier result."""
        out = asdict(self)
        if out.get("cached") is False:
            del out["cached"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "outputs": self.outputs()}


TRAINING_PROGRESS_LOGGER = "fluxora.models.neural"  # per-epoch lines of iteratively trained models


@contextmanager
def relay_logs(say: Callable[[str], None], name: str = TRAINING_PROGRESS_LOGGER) -> Iterator[None]:
    """Pass the INFO records of logger `name` to a step's progress callback while the block runs
    (the CLI prints them, a Prefect flow logs them to its run), without threading the callback
    through the model code: training progress such as the neural model's epochs."""

    class Relay(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            say(record.getMessage())

    logger = logging.getLogger(name)
    handler, level = Relay(logging.INFO), logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
