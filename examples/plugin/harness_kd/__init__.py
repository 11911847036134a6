"""harness_kd: a worked example of a harness plugin (examples/plugin/README.md).

Importing it registers, with the decorators harness's own modules use:
  * the model ``tiny_cnn`` (harness_kd.models), one typed option ``channels``;
  * the training method ``kd`` (harness_kd.distill): Hinton et al.'s knowledge distillation on the
    ``loss`` event, its teacher any registered model;
and defines the report builder ``harness_kd.report:make_table``. harness imports it through the
distribution's entry point (``pip install examples/plugin``) or as a path plugin
(``--plugins examples/plugin/harness_kd``, shipped to other nodes by Ray's ``runtime_env``).
"""
from . import distill, models  # noqa: F401  (importing registers the model and the method)
