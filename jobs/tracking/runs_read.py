"""Reading runs back from MLflow: a run's results.json, for ``whybatch report RUN_ID``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from causal_core.errors import TrackingError
from causal_core.study import StudyResult
from jobs.tracking.mlflow_runs import _tracking, resolve_tracking_uri


def download_results(run_id: str, *, tracking_uri: str | None = None) -> StudyResult:
    """The :class:`StudyResult` logged as ``results.json`` by the run ``run_id``."""
    uri = resolve_tracking_uri(tracking_uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a one-file download
    with _tracking(uri) as client, tempfile.TemporaryDirectory(prefix="whybatch-run-") as tmp:
        try:
            client.get_run(run_id)
        except Exception as exc:  # MLflow's RESOURCE_DOES_NOT_EXIST, or a malformed id
            raise TrackingError(f"{run_id!r} is neither a results file nor a run in {uri}: {exc}") from None
        path = Path(client.download_artifacts(run_id, "results.json", tmp))
        return StudyResult.from_json(path.read_text(encoding="utf-8"))


__all__ = ("download_results",)
