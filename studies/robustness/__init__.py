"""Robustness and calibration of image classifiers (AKOrN vs. a convolutional baseline).

The study of paper section 5.3 / Table 4: ``akorn robustness train`` trains AKOrN, AKOrN^mix or
the ConvNet baseline into a run directory, and ``akorn robustness eval`` attacks, corrupts and
calibrates the trained classifiers into one Dataset with its figures.

Its building blocks:

* :mod:`~studies.robustness.data` (gathering images, files and shapes): Fashion-MNIST (Debian package
  ``dataset-fashion-mnist``),
  a generated 10-class "textured shapes" set that needs no download, and a CIFAR-10 loader for
  the published python/binary files; all as :class:`ImageData` (float32 ``[N, 3, 32, 32]`` in
  [0, 1], int64 labels).
* :mod:`~studies.robustness.corruptions`: Gaussian noise, shot noise, Gaussian blur, contrast
  and brightness at severities 1..5, applied on the fly to torch batches.
* :mod:`~studies.robustness.attacks`: random-sign noise, FGSM, PGD / EOT-PGD and AutoAttack
  (the latter three through ``torchattacks`` 3.5.1, imported lazily) and robust accuracy.
* :mod:`~studies.robustness.metrics`: accuracy, expected calibration error, reliability
  diagrams (data and PNG plot), and softmax averaging over repeated passes of a stochastic model.
* :mod:`~studies.robustness.train`, :mod:`~studies.robustness.evaluate`,
  :mod:`~studies.robustness.plots` and the command's config :mod:`~studies.robustness.config`
  (``akorn robustness train|eval``, torch-free): training runs, the evaluation Dataset and its figures
  (the functions ``train``, ``evaluate`` and ``plot`` stay in their modules, whose names they
  would shadow here).

Names are imported on first access, so that ``studies.robustness.config`` (all that ``--help``
needs) loads without torch.
"""

from __future__ import annotations

from studies.lazy import lazy_attributes

__all__ = ["ATTACKS", "CIFAR10_CLASSES", "CORRUPTIONS", "FASHION_MNIST_CLASSES", "ImageData", "ReliabilityDiagram",
           "RobustnessEvalConfig", "RobustnessTrainConfig", "RunError", "SEVERITY_PARAMS",
           "TEXTURED_SHAPES_CLASSES", "accuracy", "augment", "autoattack", "build_model", "corrupt",
           "ensemble_predict", "evaluate_model", "expected_calibration_error", "fgsm", "load_cifar10",
           "load_fashion_mnist", "load_run", "no_attack", "pgd_linf", "plot_reliability_diagram",
           "plot_reliability_diagrams", "random_sign_noise", "read_idx", "reliability_diagram",
           "render_textured_shapes", "robust_accuracy", "summarize", "textured_shapes", "to_probabilities"]

__getattr__ = lazy_attributes(__name__, "config images files shapes attacks corruptions metrics models train evaluate "
                                        "results plots")
