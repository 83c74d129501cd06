"""Progress of a long run, shown in the Prefect UI (a progress artifact) and the logs."""

from __future__ import annotations

import time

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact


class RunProgress:
    """Counts finished items; updates the artifact at most once a second."""

    def __init__(self, what: str, total: int) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self._logger = get_run_logger()
        self._last_update = 0.0
        self._artifact = create_progress_artifact(0.0, description=f"{what}: 0/{total}")
        self._logger.info("%s: %d to do", what, total)

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if self.done >= self.total or now - self._last_update >= 1.0:
            self._last_update = now
            percent = 100.0 * self.done / self.total if self.total else 100.0
            description = f"{self.what}: {self.done}/{self.total}"
            update_progress_artifact(self._artifact, percent, description=description)
            self._logger.info("%s (%.0f%%)", description, percent)
