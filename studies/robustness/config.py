"""What ``akorn robustness`` needs before any work starts: the train and eval configs and the command.

Torch-free at import: :class:`RobustnessTrainConfig`, :class:`RobustnessEvalConfig` and
:data:`TASK`, from which :mod:`studies.commands` generates ``akorn robustness train|eval``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal

from studies.config import ConfigError, StudyConfig, param
from studies.protocol import Action, Task

__all__ = ["ATTACK_NAMES", "CORRUPTION_NAMES", "DEFAULT_OUT", "FILENAME", "MODELS", "PAPER_REFERENCE", "RESUMABLE",
           "TASK", "RobustnessEvalConfig", "RobustnessTrainConfig", "RunError"]





#: Model names accepted by ``--model``.
MODELS = ("akorn", "akorn-mix", "convnet")


#: A run directory that cannot be used (made with another config, unreadable, or runs that do not fit
#: together) is a :class:`~studies.config.ConfigError` naming the option; ``RunError`` is its old name.
RunError = ConfigError

_STOCHASTIC = frozenset({"akorn", "akorn-mix"})


# Fields that may differ between a run directory's config.json and the command resuming it:
# they change neither the model nor the training trajectory.
RESUMABLE = frozenset({"epochs", "checkpoint_every", "device", "val_images"})




@dataclasses.dataclass(frozen=True)
class RobustnessTrainConfig(StudyConfig):
    """How to train one classifier of the robustness study (defaults: the quick preset).

    The quick preset trains a quarter-width AKOrN (16/32/64 channels, n = 2, T = 3, γ = 1) with
    coupling kernels 5/5/3 and a ConvNet of the same parameter count (≈0.4 M) for two epochs on
    20,000 Fashion-MNIST images; on the 2-core CPU this was written on that is about 5 min for
    AKOrN and 3 min for the ConvNet when the machine is idle, 40 and 25 min under heavy load from
    other jobs (see :mod:`studies.robustness` for the measurements; ``--epochs`` can be
    raised later to continue a run). The paper preset is the published CIFAR-10 recipe
    (docs/AKORN.md §4.1, §5.3): width 64, kernels 9/7/5, Adam 1e-4, batch 128, 400 epochs, EMA 0.99
    every 10 steps after 200, and a ResNet-18-shaped ConvNet (64-512 channels, 4 stages of 2
    blocks); its augmentation is crop-and-flip, not the paper's AugMix pipeline.
    """

    study: ClassVar[str] = "robustness"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {},
        "paper": {"data": "cifar10", "train_images": None, "val_images": 1000, "width": 64,
                  "kernel_sizes": (9, 7, 5), "heads": 8, "convnet_width": 64, "convnet_depth": 4, "epochs": 400,
                  "batch_size": 128, "lr": 1e-4, "ema_every": 10, "ema_after": 200, "crop_padding": 4,
                  "checkpoint_every": 10},
    }

    model: Literal["akorn", "akorn-mix", "convnet"] = param(
        "akorn", "classifier: AKOrN (conv coupling in every block), AKOrN^mix (attention coupling in the last "
                 "block) or the convolutional baseline (pre-activation ResNet)")
    data: Literal["fashion-mnist", "textured-shapes", "cifar10"] = param(
        "fashion-mnist", "image set: Fashion-MNIST (Debian package dataset-fashion-mnist), the generated textured "
                         "shapes, or CIFAR-10 (files under --data-root or $AKORN_CIFAR10)")
    data_root: str | None = param(None, "directory of the data files (default: the loader's standard place)",
                                  metavar="DIR")
    train_images: int | None = param(20000, "training images: a seeded random subset of the training split "
                                            "(none: all of it; for textured shapes the number rendered)")
    val_images: int = param(500, "test images whose accuracy is logged after every epoch (0: none); a monitor "
                                 "only, the full evaluation is 'akorn robustness eval'")
    width: int = param(16, "AKOrN: channels of the first block (doubled in every further block)")
    depth: int = param(3, "AKOrN: number of Kuramoto blocks L")
    n: int = param(2, "AKOrN: oscillator dimension (2 is the paper's robust setting)")
    steps: int = param(3, "AKOrN: Kuramoto steps T per block")
    gamma: float = param(1.0, "AKOrN: step size γ of the Kuramoto update", units="1")
    kernel_sizes: tuple[int, ...] = param((5, 5, 3), "AKOrN: conv-coupling kernel per block (one value: all "
                                                     "blocks)", metavar="INT")
    heads: int = param(4, "AKOrN^mix: attention heads of the last block")
    convnet_width: int = param(24, "ConvNet: channels of the first stage (doubled per stage)")
    convnet_depth: int = param(3, "ConvNet: number of stages")
    convnet_blocks: int = param(2, "ConvNet: basic blocks per stage")
    epochs: int = param(6, "passes over the training images (may be raised to continue a finished run)")
    batch_size: int = param(64, "global batch size (split over DDP processes)")
    lr: float = param(1e-3, "Adam learning rate (constant)", units="1")
    weight_decay: float = param(0.0, "Adam L2 penalty", units="1")
    grad_clip: float | None = param(None, "clip the gradient's global L2 norm to this value (none: no clipping)",
                                    units="1")
    ema_decay: float | None = param(0.99, "decay of the weight average that is evaluated (none: evaluate the raw "
                                          "weights)", units="1")
    ema_every: int = param(1, "update the weight average every this many optimizer steps")
    ema_after: int = param(100, "optimizer steps during which the average just copies the weights")
    augment: Literal["none", "crop", "flip", "crop-flip"] = param(
        "crop-flip", "training augmentation: random crop from a zero-padded image and/or horizontal flip")
    crop_padding: int = param(2, "zero padding of the random crop, in pixels", units="pixel")
    seed: int = param(0, "seed of the weights, the data order, the augmentation and the training subset")
    device: Literal["auto", "cpu", "cuda"] = param("auto", "training device (auto: CUDA when available)")
    checkpoint_every: int = param(1, "write a checkpoint every this many epochs (and after the last)")
    log_every: int = param(10, "a row of the per-step history every this many steps")

    def validate(self) -> None:
        self._positive("width", "depth", "steps", "gamma", "heads", "convnet_width", "convnet_depth",
                       "convnet_blocks", "epochs", "batch_size", "lr", "ema_every", "checkpoint_every", "log_every",
                       "train_images", "grad_clip")
        self._positive("val_images", "weight_decay", "ema_after", "crop_padding", "seed", strict=False)
        if self.n < 2:
            raise ConfigError("n", f"expected an oscillator dimension >= 2, got {self.n}")
        if self.n % 2:
            raise ConfigError("n", f"the learned rotation Ω pairs components, so n must be even, got {self.n}")
        if self.width % self.n:
            raise ConfigError("width", f"must be a multiple of n={self.n} (channels are grouped into oscillators), "
                                       f"got {self.width}")
        if self.depth > 6:
            raise ConfigError("depth", f"32×32 images allow at most 6 blocks (each after the first halves the "
                                       f"side), got {self.depth}")
        if len(self.kernel_sizes) not in (1, self.depth):
            raise ConfigError("kernel_sizes", f"expected one value or one per block (depth={self.depth}), got "
                                              f"{len(self.kernel_sizes)} values {self.kernel_sizes}")
        for k in self.kernel_sizes:
            if k < 1 or k % 2 == 0:
                raise ConfigError("kernel_sizes", f"expected odd positive kernel sizes (they keep H×W), got {k}")
        if self.model == "akorn-mix" and (self.width * 2 ** (self.depth - 1)) % self.heads:
            raise ConfigError("heads", f"the last block has {self.width * 2 ** (self.depth - 1)} channels, which "
                                       f"must be a multiple of heads, got {self.heads}")
        if self.convnet_depth > 6:
            raise ConfigError("convnet_depth", f"32×32 images allow at most 6 stages, got {self.convnet_depth}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError("ema_decay", f"expected a value in [0, 1) or none, got {self.ema_decay}")
        if self.seed >= 2**31:
            raise ConfigError("seed", f"expected a value below 2**31, got {self.seed}")

    @property
    def stochastic(self) -> bool:
        """Whether the model draws random initial states on every forward pass."""
        return self.model in _STOCHASTIC






#: Attacks of the study, in the order they are run and stored.
ATTACK_NAMES = ("random_sign", "fgsm", "pgd", "autoattack", "autoattack_rand")


#: The paper's Table 4 numbers (docs/AKORN.md §7.5) as fractions, for context in summaries and plots.
PAPER_REFERENCE = {
    "AKOrN^mix (paper, CIFAR-10)": {"clean": 0.9123, "autoattack": 0.5891, "ece": 0.013},
    "ResNet-18 (paper, CIFAR-10)": {"clean": 0.9441, "autoattack": 0.0, "ece": 0.089},
}


_PARTS_DIR = "robustness-parts"


#: The corruptions of the study (the keys of :data:`studies.robustness.corruptions.CORRUPTIONS`).
CORRUPTION_NAMES = ("gaussian_noise", "shot_noise", "gaussian_blur", "contrast", "brightness")


@dataclasses.dataclass(frozen=True)
class RobustnessEvalConfig(StudyConfig):
    """What ``akorn robustness eval`` measures (defaults: the quick preset).

    The quick preset bounds the cost of the expensive parts for a small AKOrN on a 2-core
    CPU: 2,000 test images for accuracy and calibration (4 random initial states each), 200
    per corruption and severity, 200 for random noise and FGSM, 100 for PGD (ε = 4 and 8 /255,
    20 steps, EoT over 4 initial states) and 32 for both AutoAttack versions at ε = 8/255. The
    paper preset uses the whole test split for everything but PGD and AutoAttack (1,000 images
    each).
    """

    study: ClassVar[str] = "robustness"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {},
        "paper": {"test_images": 10000, "passes": 16, "corruption_images": 10000, "attack_images": 10000,
                  "pgd_images": 1000, "pgd_eps": (0.0, 1.0, 2.0, 4.0, 8.0, 16.0), "eot": 8,
                  "autoattack_images": 1000, "autoattack_eps": (0.0, 4.0, 8.0),
                  "autoattack_rand_eps": (0.0, 4.0, 8.0)},
    }

    test_images: int = param(2000, "test images for accuracy, calibration and the ensemble (a seeded random "
                                   "subset of the test split; the other parts use its first images)")
    passes: int = param(4, "random initial states per image (softmax-averaged for the ensemble; deterministic "
                           "models are run once)")
    n_bins: int = param(15, "equal-width confidence bins of the expected calibration error")
    corruptions: tuple[Literal["gaussian_noise", "shot_noise", "gaussian_blur", "contrast", "brightness"], ...] = \
        param(CORRUPTION_NAMES, "corruptions, each at severities 1..5", metavar="NAME")
    corruption_images: int = param(200, "images per corruption and severity")
    attacks: tuple[Literal["random_sign", "fgsm", "pgd", "autoattack", "autoattack_rand"], ...] = param(
        ATTACK_NAMES, "attacks to run: random-sign noise, FGSM, PGD with EoT, AutoAttack standard, AutoAttack rand "
                      "(with EoT)", metavar="NAME")
    attack_images: int = param(200, "images attacked with random-sign noise and FGSM")
    random_sign_eps: tuple[float, ...] = param((0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0),
                                               "L∞ sizes of the random-sign noise", units="1/255", metavar="EPS")
    fgsm_eps: tuple[float, ...] = param((0.0, 1.0, 2.0, 4.0, 8.0, 16.0), "L∞ radii of FGSM", units="1/255",
                                        metavar="EPS")
    pgd_images: int = param(100, "images attacked with PGD")
    pgd_eps: tuple[float, ...] = param((0.0, 4.0, 8.0), "L∞ radii of PGD", units="1/255", metavar="EPS")
    pgd_steps: int = param(20, "PGD iterations (step size ε/3, no random start)")
    eot: int = param(4, "PGD on a stochastic model: forward/backward passes (random initial states) whose "
                        "gradients are summed per step")
    autoattack_images: int = param(32, "images attacked with either AutoAttack version")
    autoattack_eps: tuple[float, ...] = param((0.0, 8.0), "L∞ radii of AutoAttack standard (APGD-CE, APGD-T, "
                                                          "FAB-T, Square)", units="1/255", metavar="EPS")
    autoattack_rand_eps: tuple[float, ...] = param((0.0, 8.0), "L∞ radii of AutoAttack rand (APGD-CE and "
                                                               "APGD-DLR, 20 EoT passes each)", units="1/255",
                                                   metavar="EPS")
    batch_size: int = param(100, "images per forward pass and per attack batch")
    seed: int = param(0, "seed of the test subset, the initial states, the corruptions and the attacks")
    device: Literal["auto", "cpu", "cuda"] = param("auto", "evaluation device (auto: CUDA when available)")

    def validate(self) -> None:
        self._positive("test_images", "passes", "n_bins", "corruption_images", "attack_images", "pgd_images",
                       "pgd_steps", "eot", "autoattack_images", "batch_size")
        self._positive("seed", strict=False)
        for name in ("corruption_images", "attack_images", "pgd_images", "autoattack_images"):
            if getattr(self, name) > self.test_images:
                raise ConfigError(name, f"the attacked and corrupted images are taken from the {self.test_images} "
                                        f"test images (test_images), got {getattr(self, name)}")
        for name in ("corruptions", "attacks"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ConfigError(name, f"expected distinct values, got {' '.join(values)}")
        for name in ("random_sign_eps", "fgsm_eps", "pgd_eps", "autoattack_eps", "autoattack_rand_eps"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ConfigError(name, f"expected distinct values, got {values}")
            for v in values:
                if not 0.0 <= v <= 255.0:
                    raise ConfigError(name, f"expected radii in [0, 255] (units of 1/255), got {v:g}")
        if self.seed >= 2**31:
            raise ConfigError("seed", f"expected a value below 2**31, got {self.seed}")

    def eps_of(self, attack: str) -> tuple[float, ...]:
        """The ε list (units of 1/255) of ``attack``."""
        return getattr(self, f"{attack}_eps")

    def images_of(self, attack: str) -> int:
        """How many images ``attack`` is run on."""
        return {"random_sign": self.attack_images, "fgsm": self.attack_images, "pgd": self.pgd_images,
                "autoattack": self.autoattack_images, "autoattack_rand": self.autoattack_images}[attack]

    @property
    def ensemble_sizes(self) -> tuple[int, ...]:
        """Ensemble sizes reported: powers of two up to ``passes``, and ``passes``."""
        sizes = {2 ** i for i in range(int(math.log2(self.passes)) + 1)} | {self.passes}
        return tuple(sorted(sizes))


#: File name of the evaluation Dataset inside ``--out``.
FILENAME = "robustness.h5"

#: Default output directory: runs go to ``<DEFAULT_OUT>/<model>``, the evaluation to ``<DEFAULT_OUT>``.
DEFAULT_OUT = "results/robustness"

_PRESET_HELP = {
    "train": "parameter preset: 'quick' trains on Fashion-MNIST on a 2-core CPU (AKOrN 15 min idle, about 2 "
             "h under heavy load; ConvNet 10 min and 75 min), 'paper' is the published CIFAR-10 recipe for a GPU "
             "(default: quick)",
    "eval": "parameter preset: 'quick' bounds the attack cost with image subsets (quick AKOrN on a 2-core CPU: "
            "10 min idle, about 70 min under heavy load), 'paper' uses the whole test split (GPU) (default: quick)",
}


def _train_options(parser: Any, group: Any) -> None:
    group.add_argument("--out", default=None, metavar="DIR", help=f"run directory (default: {DEFAULT_OUT}/<model>)")


def _eval_options(parser: Any, group: Any) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories (the --out of 'train')")
    group.add_argument("--labels", nargs="+", default=None, metavar="NAME",
                       help="names of the runs in the results (default: their model names)")
    group.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                       help=f"directory of {FILENAME}, its figure and the cached parts (default: {DEFAULT_OUT})")


#: ``akorn robustness train|eval`` (:mod:`studies.commands`).
TASK = Task(
    name="robustness",
    description="Image classification: adversarial robustness, corruptions and calibration, AKOrN vs a ConvNet.",
    train=Action(RobustnessTrainConfig, "studies.robustness.train:train_command",
                 help="train one classifier into a run directory (resumes a run found there)",
                 description="Train AKOrN, AKOrN^mix or the ConvNet baseline with Adam and a weight average; a "
                             "checkpoint is written after every epoch and rerunning the same command continues "
                             "from it. Under torchrun --nproc_per_node=K the batch is split over K processes.",
                 preset_help=_PRESET_HELP["train"], options=_train_options),
    eval=Action(RobustnessEvalConfig, "studies.robustness.evaluate:eval_command",
                help="attack, corrupt and calibrate trained classifiers; one Dataset and figures",
                description="Evaluate run directories of 'akorn robustness train' on a seeded subset of the test "
                            "split. Finished parts are cached, so rerunning an interrupted command resumes it.",
                preset_help=_PRESET_HELP["eval"], options=_eval_options),
    plots="studies.robustness.plots",
)
