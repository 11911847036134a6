"""The one place that reads what a library keeps private: each access where no public API gives the
same, one function each, with a test that fails when the library moves it (tests/test_adapters.py).

  trial_statuses(grid)     Tune's status of each trial of a ResultGrid (TERMINATED, ERROR, PENDING, ...).
                           ``Result`` carries no status and ``ResultGrid`` only counts them
                           (``num_terminated``, ``num_errors``): a trial an interrupted fit left RUNNING
                           or PENDING is told from a finished one by this alone.
  pet_images_and_labels(ds)  torchvision's OxfordIIITPet: its image paths and labels as it parsed them from
                           ``annotations/<split>.txt``; the dataset has no ``targets``, and its public
                           ``ds[i]`` decodes every image for its label.
  system_metrics_monitor(run_id, interval_s, uri)  MLflow's SystemMetricsMonitor on a run given by id:
                           the public route (``mlflow.start_run(log_system_metrics=True)``) needs the
                           fluent API's active run, which a trial, a client-only writer, never opens.

Everything else in harness/ uses public APIs (tests/test_layout.py scans for private attributes).
"""
from __future__ import annotations


def trial_statuses(grid) -> list[str]:
    """Tune's status of each trial of ``grid`` (a ``ray.tune.ResultGrid``), in the grid's own order."""
    return [trial.status for trial in grid._experiment_analysis.trials]


def pet_images_and_labels(ds) -> tuple[list, list[int]]:
    """(image paths, 0-based class labels) of a ``torchvision.datasets.OxfordIIITPet``, no image decoded."""
    return list(ds._images), list(ds._labels)


def system_metrics_monitor(run_id: str, interval_s: float, uri: str):
    """MLflow's sampler of CPU, memory, disk, network (and GPU) on run ``run_id``: ``start()``, ``finish()``;
    a resumed run continues its steps."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    return SystemMetricsMonitor(run_id, sampling_interval=interval_s, resume_logging=True, tracking_uri=uri)
