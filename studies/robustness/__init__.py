"""Robustness and calibration of image classifiers (AKOrN vs. a convolutional baseline).

Building blocks of the study of paper section 5.3 / Table 4:

* :mod:`~studies.robustness.data` (gathering images, files and shapes): Fashion-MNIST (Debian package ``dataset-fashion-mnist``),
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
  :mod:`~studies.robustness.plots` and the command"s config :mod:`~studies.robustness.config`
  (``akorn robustness train|eval``, torch-free): training runs, the evaluation Dataset and its figures
  (the functions ``train``, ``evaluate`` and ``plot`` stay in their modules, whose names they
  would shadow here).

Names are imported on first access, so that ``studies.robustness.config`` (all that ``--help``
needs) loads without torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ATTACKS", "CIFAR10_CLASSES", "CORRUPTIONS", "FASHION_MNIST_CLASSES", "ImageData", "ReliabilityDiagram", "RobustnessEvalConfig", "RobustnessTrainConfig", "RunError", "SEVERITY_PARAMS", "TEXTURED_SHAPES_CLASSES", "accuracy", "augment", "autoattack", "build_model", "corrupt", "ensemble_predict", "evaluate_model", "expected_calibration_error", "fgsm", "load_cifar10", "load_fashion_mnist", "load_run", "no_attack", "pgd_linf", "plot_reliability_diagram", "plot_reliability_diagrams", "random_sign_noise", "read_idx", "reliability_diagram", "render_textured_shapes", "robust_accuracy", "summarize", "textured_shapes", "to_probabilities"]

_LAZY = {
    "ATTACKS": "studies.robustness.attacks",
    "CIFAR10_CLASSES": "studies.robustness.files",
    "CORRUPTIONS": "studies.robustness.corruptions",
    "FASHION_MNIST_CLASSES": "studies.robustness.files",
    "ImageData": "studies.robustness.images",
    "ReliabilityDiagram": "studies.robustness.metrics",
    "RobustnessEvalConfig": "studies.robustness.config",
    "RobustnessTrainConfig": "studies.robustness.config",
    "RunError": "studies.robustness.config",
    "SEVERITY_PARAMS": "studies.robustness.corruptions",
    "TEXTURED_SHAPES_CLASSES": "studies.robustness.shapes",
    "accuracy": "studies.robustness.metrics",
    "augment": "studies.robustness.train",
    "autoattack": "studies.robustness.attacks",
    "build_model": "studies.robustness.models",
    "corrupt": "studies.robustness.corruptions",
    "ensemble_predict": "studies.robustness.metrics",
    "evaluate_model": "studies.robustness.evaluate",
    "expected_calibration_error": "studies.robustness.metrics",
    "fgsm": "studies.robustness.attacks",
    "load_cifar10": "studies.robustness.files",
    "load_fashion_mnist": "studies.robustness.files",
    "load_run": "studies.robustness.models",
    "no_attack": "studies.robustness.attacks",
    "pgd_linf": "studies.robustness.attacks",
    "plot_reliability_diagram": "studies.robustness.metrics",
    "plot_reliability_diagrams": "studies.robustness.plots",
    "random_sign_noise": "studies.robustness.attacks",
    "read_idx": "studies.robustness.files",
    "reliability_diagram": "studies.robustness.metrics",
    "render_textured_shapes": "studies.robustness.shapes",
    "robust_accuracy": "studies.robustness.attacks",
    "summarize": "studies.robustness.plots",
    "textured_shapes": "studies.robustness.shapes",
    "to_probabilities": "studies.robustness.metrics",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib  # torch-free --help: the study"s modules load on first use

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
