"""harness: composable efficient-CNN building blocks, Ray Tune sweeps and MLflow tracking."""

__version__ = "0.1.0"
