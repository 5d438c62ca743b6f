"""Conformance kit: checks a plugin author runs in their own test suite.

Every check is a small function that builds its subject afresh, runs it on tiny synthetic data and
raises :class:`CheckFailed` -- an :class:`AssertionError` -- whose message names the check, the
subject and what was expected, e.g.::

    check_encode_shape[my-model]: expected encode(x) for x of shape (5, 1, 28, 28) to have
    shape (5, 10), got (5, 20)

Three kinds of subject share one mechanism:

- **models**: a :class:`~vaebench.model.ModelSpec`, a registered name (``"vae"``; looked up
  through the installed plugins) or a factory ``factory(input_shape=..., device=..., **params)``
  (a :class:`~vaebench.model.Model` subclass works);
- **datasets**: a :class:`~vaebench.dataset.DatasetSpec`, a registered name or a loader;
- **metrics**: a :class:`~vaebench.metric.Metric` instance or a registered name.

Three ways to use it:

- in pytest, one test per check (ids like ``check_encode_shape[my-model]``, so ``-k`` picks
  one), in the spirit of scikit-learn's ``parametrize_with_checks``::

      from vaebench.testing import parametrize_with_checks
      from my_package.plugin import MY_SPEC

      @parametrize_with_checks([MY_SPEC])
      def test_vaebench_conformance(subject, check):
          check(subject)

- all at once: :func:`check_model`, :func:`check_dataset`, :func:`check_metric` run every check
  and raise :class:`ConformanceError` listing each failure;
- without raising: :func:`run_model_checks`, :func:`run_dataset_checks` and
  :func:`run_metric_checks` (used by ``vaebench check``) yield one :class:`CheckResult` per check.

**The model checks adapt to the model's tags** (:class:`vaebench.model.Tags`), as scikit-learn's
checks adapt to estimator tags: the image shapes :data:`SHAPES` are fitted to the tags'
``channels``, ``min_image_size`` and ``max_image_size``; ``fit`` receives labels when
``uses_labels``; :func:`check_sample` applies only when ``can_sample``,
:func:`check_posterior` when ``has_posterior``, :func:`check_log_likelihood` when
``likelihood`` names one, and the two-fit comparison of :func:`check_deterministic` when
``deterministic``. A check that does not apply returns a note starting with
``"not applicable"`` (pytest reports it as skipped, ``vaebench check`` as SKIP).

Checks override ``epochs`` and ``batch_size`` (when the model has them) and run torch on one CPU
thread to keep each check well under a second; ``params`` adds overrides of your own (e.g. a
smaller network).
"""

from __future__ import annotations

# Every name of __all__, and (noqa: F401) the constants and helpers that were importable from
# the single-file vaebench.testing before it became this package.
from vaebench.testing.core import (  # noqa: F401
    FAST_EVAL_OPTIONS,
    FIT_BATCH_SIZE,
    FIT_EPOCHS,
    MAX_TEST_OVERLAP,
    N_FIT,
    N_TINY,
    NOT_APPLICABLE,
    PROBE_SHAPES,
    SHAPES,
    TIMING_UNITS,
    CheckFailed,
    CheckResult,
    ConformanceError,
)
from vaebench.testing.dataset_kit import (  # noqa: F401
    OVERLAP_INFO_KEY,
    check_dataset_deterministic,
    check_dataset_labels,
    check_dataset_loads,
    check_dataset_overlap,
    check_dataset_range,
    check_dataset_render,
    check_dataset_shapes,
    dataset_checks,
)
from vaebench.testing.metric_kit import (
    check_metric_declares,
    check_metric_deterministic,
    check_metric_values,
    metric_checks,
)
from vaebench.testing.model_kit import (
    check_decode_range,
    check_decode_shape,
    check_deterministic,
    check_device,
    check_encode_shape,
    check_fit_last_batch_of_one,
    check_fit_lowers_loss,
    check_inference_unchanged,
    check_interface,
    check_log_likelihood,
    check_metadata,
    check_no_grad,
    check_posterior,
    check_sample,
    check_save_load,
    check_tags,
    model_checks,
)
from vaebench.testing.pytest_helper import (
    parametrize_with_checks,
)
from vaebench.testing.runners import (
    check_dataset,
    check_metric,
    check_model,
    run_dataset_checks,
    run_metric_checks,
    run_model_checks,
)
from vaebench.testing.tiny import (  # noqa: F401
    _render_blobs,
    tiny_dataset,
    tiny_images,
    tiny_labels,
)

__all__ = [
    "CheckFailed",
    "ConformanceError",
    "CheckResult",
    "SHAPES",
    "MAX_TEST_OVERLAP",
    "tiny_images",
    "tiny_labels",
    "tiny_dataset",
    "model_checks",
    "dataset_checks",
    "metric_checks",
    "check_model",
    "check_dataset",
    "check_metric",
    "run_model_checks",
    "run_dataset_checks",
    "run_metric_checks",
    "parametrize_with_checks",
    # model checks
    "check_interface",
    "check_tags",
    "check_metadata",
    "check_encode_shape",
    "check_decode_shape",
    "check_decode_range",
    "check_no_grad",
    "check_inference_unchanged",
    "check_device",
    "check_deterministic",
    "check_save_load",
    "check_fit_lowers_loss",
    "check_fit_last_batch_of_one",
    "check_sample",
    "check_posterior",
    "check_log_likelihood",
    # dataset checks
    "check_dataset_loads",
    "check_dataset_shapes",
    "check_dataset_range",
    "check_dataset_labels",
    "check_dataset_overlap",
    "check_dataset_render",
    "check_dataset_deterministic",
    # metric checks
    "check_metric_declares",
    "check_metric_values",
    "check_metric_deterministic",
]
