"""What ``akorn objects`` needs before any work starts: the datasets' paper settings, the config and the command.

Torch-free at import: :class:`Config` (one field per option, the ``quick`` and ``paper`` presets),
the run-directory rules (:func:`run_dir`, :func:`eval_path`, :func:`check_run_config`) and
:data:`TASK`, from which :mod:`studies.commands` generates ``akorn objects train|eval``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar, Literal

from studies.config import LAYER_METHODS, ConfigError, StudyConfig, param
from studies.protocol import Action, Task, non_negative_int, positive_int
from studies.rundir import CONFIG_NAME as _RUN_CONFIG
from studies.rundir import changed_fields, config_path, read_config

__all__ = ["MODEL_NAMES", "TASK", "CONFIG_NAME", "Config", "DATASETS", "DEFAULT_OUT", "DatasetSpec", "EVAL_FIELDS",
           "FILENAME", "check_run_config", "eval_path", "read_run_config", "run_dir"]


#: Result file of ``akorn objects eval`` with the default evaluation settings (see :func:`eval_path`).
FILENAME = "eval.h5"


#: Parent directory of the runs unless ``--out`` says otherwise.
DEFAULT_OUT = "results/objects"


#: The study config of a run, written when its training starts.
CONFIG_NAME = _RUN_CONFIG


#: Display names of the models.
MODEL_NAMES = {"akorn": "AKOrN", "itrsa": "ItrSA", "vit": "ViT"}

@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Per-dataset settings of the official runs (docs/AKORN.md §4.3, §5.2, §5.5; the official repository's ``scripts/synths.md``).

    Attributes:
        image_size: side of the (square) images fed to the model.
        patch_size: patch side p of the paper's model (token grid ``image_size / p``).
        clusters: K of the agglomerative clustering (objects + background).
        width: channels C of the paper's model.
        stimulus_norm: the paper's stimulus normalisation.
        epochs: the paper's training epochs.
        num_train: training scenes to generate (generated sets); published sets use their split.
        num_test: test scenes (generated sets); published sets use their whole test split.
        generated: a generator exists in :mod:`studies.objects.data` (else ``--data-root`` is needed).
    """

    image_size: int
    patch_size: int
    clusters: int
    width: int
    stimulus_norm: str
    epochs: int
    num_train: int
    num_test: int
    generated: bool


#: The paper's settings per dataset. Shapes has no published run; its K is 4 shapes + background,
#: the rest copies Tetrominoes' recipe (our choice).
DATASETS: dict[str, DatasetSpec] = {
    "tetrominoes": DatasetSpec(32, 4, 4, 128, "none", 50, 60_000, 320, True),
    "dsprites": DatasetSpec(64, 4, 7, 128, "none", 50, 60_000, 320, True),
    "shapes": DatasetSpec(40, 4, 5, 128, "none", 50, 40_000, 1_000, True),
    "clevr": DatasetSpec(128, 8, 11, 256, "none", 300, 70_000, 320, False),
    "clevrtex": DatasetSpec(128, 8, 11, 256, "gn", 500, 40_000, 5_000, False),
}


#: Fields that only affect ``eval``: they may differ between the training run and its evaluation.
EVAL_FIELDS = frozenset({"clusters", "pca_dim", "uptile", "eval_steps", "eval_method", "eval_step_scale", "num_test",
                         "num_examples", "eval_batch", "eval_seed", "eval_untrained", "fg_ari_empty"})


#: Fields that may change when a run is resumed or evaluated: more epochs (the trainer extends a
#: run) and the monitoring, which runs under a forked RNG and does not change the weights.
_RESUMABLE_FIELDS = frozenset({"epochs", "monitor_every", "monitor_images"})


@dataclasses.dataclass(frozen=True)
class Config(StudyConfig):
    """Parameters of the object-discovery study (defaults: the quick preset).

    Fields left at ``None`` take the dataset's paper value from :data:`DATASETS`
    (:meth:`resolved` fills them in).
    """

    study: ClassVar[str] = "objects"
    # quick (the field defaults): the paper's Tetrominoes recipe scaled to a 2-core CPU. Measured
    # under a load of 5-7 on 2 cores: AKOrN 2.6 s/step with --compile (5.3-6.4 s eager), ItrSA
    # 3.0 s/step, so 14 epochs of 128 steps take about 1.5 h each. The EMA is updated every step
    # (not every 10): with only ~1,800 steps, β = 0.998 every 10 steps would leave the evaluated
    # weights about 70% those of step 200.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {},
        # the official repository's scripts/synths.md (Tetrominoes): C 128, patch 4, T 8, L 1, no stimulus norm, batch 256,
        # 50 epochs of 60k scenes, Adam 1e-3, EMA 0.998 every 10 steps after 200.
        "paper": {"num_train": None, "width": None, "batch_size": 256, "epochs": None, "ema_every": 10,
                  "monitor_images": 320, "monitor_every": 5},
    }

    model: Literal["akorn", "itrsa", "vit"] = param(
        "akorn", "network: AKOrN (attention coupling, GTA), ItrSA (one attention block iterated T times) or ViT "
                 "(ItrSA with T = 1)")
    dataset: Literal["tetrominoes", "shapes", "dsprites", "clevr", "clevrtex"] = param(
        "tetrominoes", "scenes: generated look-alikes (tetrominoes, dsprites; shapes is the official toy recipe) "
                       "unless --data-root points to the published files; clevr and clevrtex need --data-root")
    data_root: str | None = param(None, "directory of the published files (official converter's .npz files, or the "
                                        "CLEVRTex PNGs); none: generate the scenes", metavar="DIR")
    num_train: int | None = param(8192, "training scenes (none: the dataset's paper count; published sets: at most "
                                        "this many of the train split)")
    data_seed: int = param(0, "seed of the generated scenes (train uses 2·seed, test 2·seed + 1, monitoring "
                              "2·seed + 2)")
    width: int | None = param(64, "channels C of the feature maps (none: the dataset's paper width)")
    depth: int = param(1, "blocks L")
    n: int = param(4, "oscillator dimension (AKOrN)")
    steps: int = param(8, "Kuramoto steps T per block (AKOrN) or attention iterations (ItrSA; ViT uses 1)")
    heads: int = param(8, "attention heads")
    patch_size: int | None = param(None, "patch side p (none: the dataset's paper value)", units="pixel")
    coupling: Literal["attn", "conv"] = param("attn", "AKOrN coupling J")
    kernel_size: int = param(1, "kernel of the conv coupling (the paper's conv variants use 5 or 7)")
    gta: bool = param(True, "geometric transform attention in AKOrN's coupling (ItrSA/ViT use a positional "
                            "embedding, as the paper's baselines)")
    stimulus_norm: Literal["auto", "gn", "sandb", "none"] = param(
        "auto", "AKOrN stimulus normalisation (auto: the dataset's paper value, GroupNorm for CLEVRTex, none for the "
                "others)")
    legacy_identity_omega: bool = param(
        True, "reproduce the official Ω-off quirk (effective step γ/(1+γ)) that every published object-discovery "
              "number used")
    epochs: int | None = param(14, "training epochs (none: the dataset's paper count)")
    batch_size: int = param(64, "images per step; each gives two views, so InfoNCE sees 2·batch embeddings")
    lr: float = param(1e-3, "Adam learning rate")
    grad_clip: float | None = param(None, "clip the gradient's global L2 norm (none: no clipping, as the paper)")
    ema_decay: float = param(0.998, "EMA factor of the weights that are evaluated")
    ema_every: int = param(1, "EMA update every this many steps")
    ema_after: int = param(200, "steps during which the EMA copy equals the weights")
    temperature: float = param(0.1, "InfoNCE temperature τ")
    crop_scale: float = param(0.08, "smallest area fraction of the random resized crop (largest: 1)")
    hflip: bool = param(False, "random horizontal flips (off for the paper's object data)")
    seed: int = param(1234, "seed of the model's initial weights, the data order and the augmentations")
    monitor_every: int | None = param(1, "every this many epochs, score FG-ARI/MBO on monitoring scenes "
                                         "(none: never)")
    monitor_images: int = param(64, "monitoring scenes (generated with their own seed, or the val split)")
    clusters: int | None = param(None, "clusters K per image (none: the dataset's paper value)")
    pca_dim: int | None = param(128, "per-image PCA dimension before clustering (none: no PCA)")
    uptile: int = param(1, "up-tiling factor r (r² shifted passes, an r× finer map; the paper uses 4)")
    eval_steps: int | None = param(None, "Kuramoto steps / iterations at evaluation (none: as in training)")
    eval_method: Literal[LAYER_METHODS] | None = param(  # type: ignore[valid-type]
        None, "run the trained AKOrN layers with this fixed-step integrator at evaluation (e.g. heun_normalized, "
              "lawson_rk4); none: the one it was trained with", metavar="METHOD")
    eval_step_scale: float = param(1.0, "multiply the step size γ of every Kuramoto layer by this at evaluation "
                                        "(AKOrN only): 0.5 with twice the --eval-steps follows the same flow closer")
    num_test: int | None = param(None, "test scenes (none: the dataset's count of generated scenes, 320, or 1000 for "
                                       "Shapes; published sets: the whole test split)")
    num_examples: int = param(8, "test scenes whose images, masks and oscillator states are stored for the plot")
    eval_batch: int = param(64, "images per forward pass at evaluation")
    eval_seed: int = param(0, "seed of the oscillators' random initial states at evaluation")
    eval_untrained: bool = param(True, "also score the run's initial (untrained) weights: the level that training "
                                       "has to beat (random features already segment simple scenes)")
    fg_ari_empty: Literal["skip", "one"] = param(
        "skip", "FG-ARI of a scene without foreground: 'skip' leaves it out of the means, 'one' scores it 1.0 as the "
                "official eval_obj.py does")

    def validate(self) -> None:
        self._positive("num_train", "width", "depth", "n", "steps", "heads", "patch_size", "kernel_size", "epochs",
                       "batch_size", "lr", "grad_clip", "ema_every", "temperature", "crop_scale", "monitor_every",
                       "monitor_images", "clusters", "pca_dim", "uptile", "eval_steps", "num_test", "num_examples",
                       "eval_batch")
        self._positive("data_seed", "ema_after", "seed", "eval_seed", strict=False)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError("ema_decay", f"expected a factor in [0, 1), got {self.ema_decay}")
        if self.crop_scale > 1.0:
            raise ConfigError("crop_scale", f"expected an area fraction in (0, 1], got {self.crop_scale}")
        if not (math.isfinite(self.eval_step_scale) and self.eval_step_scale > 0):
            raise ConfigError("eval_step_scale", f"expected a positive finite factor, got {self.eval_step_scale}")
        if self.model != "akorn" and (self.eval_method is not None or self.eval_step_scale != 1):
            field = "eval_method" if self.eval_method is not None else "eval_step_scale"
            raise ConfigError(field, f"a test-time integrator or step applies to AKOrN's Kuramoto layers; the "
                                     f"{self.model} model has none")
        if self.seed >= 2**31:
            raise ConfigError("seed", f"expected a seed below 2**31, got {self.seed}")
        spec = DATASETS[self.dataset]
        if not spec.generated and self.data_root is None:
            raise ConfigError("data_root", f"dataset {self.dataset!r} has no generator; point --data-root to the "
                                           f"published files")
        if self.model == "akorn":
            if self.n < 2:
                raise ConfigError("n", f"expected an oscillator dimension >= 2, got {self.n}")
            if self.resolved_width % self.n:
                raise ConfigError("width", f"must be a multiple of n={self.n}, got {self.resolved_width}")
        if (self.model != "akorn" or self.coupling == "attn") and self.resolved_width % self.heads:
            raise ConfigError("heads", f"must divide width={self.resolved_width}, got {self.heads}")
        if self.model != "akorn" and self.resolved_width % 4:
            raise ConfigError("width", f"ItrSA/ViT's 2-D sinusoidal embedding needs a multiple of 4, got "
                                       f"{self.resolved_width}")
        if self.model == "akorn" and self.coupling == "attn" and self.gta and (self.resolved_width // self.heads) % 2:
            raise ConfigError("heads", f"GTA needs an even head size width/heads, got "
                                       f"{self.resolved_width}/{self.heads}")
        size, p = spec.image_size, self.resolved_patch_size
        if size % p:
            raise ConfigError("patch_size", f"must divide the image size {size} of {self.dataset!r}, got {p}")
        if p % self.uptile:
            raise ConfigError("uptile", f"must divide patch_size={p}, got {self.uptile}")
        tokens = (size // p) ** 2 * self.uptile ** 2
        if self.resolved_clusters > tokens:
            raise ConfigError("clusters", f"at most the {tokens} feature-map positions, got {self.resolved_clusters}")

    # -- values with the dataset defaults filled in -------------------------------------------
    @property
    def spec(self) -> DatasetSpec:
        """The dataset's :class:`DatasetSpec`."""
        return DATASETS[self.dataset]

    @property
    def image_size(self) -> int:
        """Side of the images fed to the model."""
        return self.spec.image_size

    @property
    def resolved_width(self) -> int:
        """``width``, or the dataset's paper width."""
        return self.spec.width if self.width is None else self.width

    @property
    def resolved_patch_size(self) -> int:
        """``patch_size``, or the dataset's paper patch size."""
        return self.spec.patch_size if self.patch_size is None else self.patch_size

    @property
    def resolved_clusters(self) -> int:
        """``clusters``, or the dataset's paper K."""
        return self.spec.clusters if self.clusters is None else self.clusters

    def resolved(self) -> Config:
        """A copy with every ``None`` that has a dataset default replaced by it."""
        spec = self.spec
        return self.replace(
            num_train=spec.num_train if self.num_train is None and self.data_root is None else self.num_train,
            width=self.resolved_width, patch_size=self.resolved_patch_size, clusters=self.resolved_clusters,
            stimulus_norm=spec.stimulus_norm if self.stimulus_norm == "auto" else self.stimulus_norm,
            epochs=spec.epochs if self.epochs is None else self.epochs,
            num_test=spec.num_test if self.num_test is None and self.data_root is None else self.num_test,
        )

    def training_differences(self, other: Config, *, ignore: frozenset[str] = frozenset()) -> list[str]:
        """Fields (other than :data:`EVAL_FIELDS` and ``ignore``) whose resolved values differ."""
        a, b = self.resolved().to_dict(), other.resolved().to_dict()
        return [k for k in a if k not in EVAL_FIELDS and k not in ignore and a[k] != b.get(k)]


def eval_path(config: Config, directory: str | Path) -> Path:
    """The evaluation file of ``config`` in a run directory.

    ``eval.h5`` with the default evaluation settings; non-default up-tiling, step count,
    test-time integrator or step, cluster count, and the official FG-ARI rule for empty scenes, are
    named in the file (``eval-uptile4.h5``, ``eval-T16.h5``, ``eval-T32-heun_normalized-step0.5.h5``,
    ``eval-K5.h5``, ``eval-empty-one.h5``)
    so that evaluations with different settings sit side by side.
    """
    parts = ["eval"]
    if config.uptile > 1:
        parts.append(f"uptile{config.uptile}")
    if config.eval_steps is not None:
        parts.append(f"T{config.eval_steps}")
    if config.eval_method is not None:
        parts.append(config.eval_method)
    if config.eval_step_scale != 1:
        parts.append(f"step{config.eval_step_scale:g}")
    if config.clusters is not None:
        parts.append(f"K{config.clusters}")
    if config.fg_ari_empty != "skip":
        parts.append(f"empty-{config.fg_ari_empty}")
    return Path(directory) / ("-".join(parts) + ".h5")


def run_dir(config: Config, out: str | Path) -> Path:
    """The run directory ``<out>/<dataset>-<model>-seed<seed>`` of a config."""
    return Path(out) / f"{config.dataset}-{config.model}-seed{config.seed}"


def read_run_config(directory: str | Path) -> Config | None:
    """The config stored in a run directory, or ``None`` when there is none.

    Raises:
        ValueError: the file exists but is not a valid config.
    """
    if not config_path(directory).is_file():
        return None
    return read_config(directory, Config)


def check_run_config(config: Config, directory: str | Path, *, for_eval: bool) -> None:
    """Refuse a run directory whose stored config differs in a training field.

    The fields compared are the resolved ones (dataset defaults filled in); evaluation settings,
    ``epochs`` and the monitoring settings may differ.

    Args:
        config: the config of this command.
        directory: the run directory.
        for_eval: the check is for ``eval`` (only changes the message).

    Raises:
        ConfigError: naming the first differing field.
    """
    saved = read_run_config(directory)
    if saved is None:
        return
    was, got = saved.resolved().to_dict(), config.resolved().to_dict()
    diffs = changed_fields(was, got, EVAL_FIELDS | _RESUMABLE_FIELDS)
    if diffs:
        name = diffs[0]
        what = "evaluate" if for_eval else "resume"
        raise ConfigError(name, f"the run in {str(directory)!r} was trained with {name}={was[name]!r}, not "
                                f"{got[name]!r}; cannot {what} it (use the run's value, or another --out / --seed "
                                f"for a new run)")


_PRESET_HELP = ("parameter preset: 'quick' trains on a 2-core CPU in under 2 hours (C=64, 8192 scenes, 14 epochs of "
                "128 steps; AKOrN needs --compile for that), 'paper' is the published recipe for a GPU "
                "(default: quick)")


def _common_options(group: Any) -> None:
    group.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                       help=f"parent of the run directory <dataset>-<model>-seed<seed> (default: {DEFAULT_OUT})")
    group.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                       help="where to run (default: auto = CUDA when available)")


def _train_options(parser: Any, group: Any) -> None:
    _common_options(group)
    group.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                       help="torch.compile the model in the training step (AKOrN on CPU: 2.6 instead of 5.3-6.4 s "
                            "per quick-preset step, after a one-off compilation of ~5 CPU-minutes, ~9 min wall on a "
                            "loaded machine; no gain measured for ItrSA; default: off)")
    group.add_argument("--workers", type=non_negative_int, default=0, metavar="INT",
                       help="DataLoader worker processes (default: 0; part of the run's config, keep it on resume)")
    group.add_argument("--checkpoint-every", type=positive_int, default=1, metavar="INT",
                       help="write a checkpoint every this many epochs (default: 1)")


def _common_options_for_eval(parser: Any, group: Any) -> None:
    _common_options(group)


#: ``akorn objects train|eval`` (:mod:`studies.commands`).
_TRAIN = Action(Config, "studies.objects.train:train_command",
                "train a model with SimCLR (resumes an interrupted run)",
                "Train AKOrN, ItrSA or ViT with SimCLR on multi-object scenes into <out>/<dataset>-<model>-seed<seed>/. "
                "Rerun the same command to resume after an interruption; under torchrun it trains with DDP.",
                _PRESET_HELP, _train_options, resume="rerun the same command to resume from the last completed epoch")
_EVAL = Action(Config, "studies.objects.evaluate:eval_command", "cluster features into masks, score FG-ARI and MBO, plot",
               "Evaluate a trained run: EMA weights, features, per-image PCA, agglomerative clustering, FG-ARI and "
               "MBO; writes eval.h5 and eval.png in the run directory (eval-uptile4.h5 etc. for other evaluation "
               "settings).", _PRESET_HELP, _common_options_for_eval)
TASK = Task("objects", "Unsupervised object discovery: train AKOrN / ItrSA / ViT with SimCLR, cluster features into "
                       "masks.", _TRAIN, _EVAL, "studies.objects.plots")
