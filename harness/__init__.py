"""harness: composable efficient-CNN building blocks, Ray Tune sweeps and MLflow tracking."""

from .shipped import use_checkout

__version__ = "0.1.0"

use_checkout()  # from a checkout, harness_analysis is its analysis/ folder (harness/shipped.py)
