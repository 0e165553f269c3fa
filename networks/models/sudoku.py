"""The Sudoku AKOrN (docs/AKORN.md §4.2) and the board helpers shared with the Sudoku baselines.

Boards are ``S × S`` grids of boxes ``rows × cols`` with ``S = rows · cols`` digits (the
classic 9 × 9 board has 3 × 3 boxes; 4 × 4 has 2 × 2, 6 × 6 has 2 × 3). A board is given
either as an integer grid ``[B, S, S]`` (0 = blank, 1…S = digit) or one-hot ``[B, S, S, S]``
(all-zero vector for a blank, as in the SATNet files).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from kuramoto.checks import check_count, is_int

from ..akorn_block import check_coupling_name, kuramoto_block
from ..blocks import FF, ReadOut, ResBlock, _normalize_groups
from ..layer import Trajectory
from ..layer import initial_state as layer_initial_state

__all__ = ["SudokuAKOrN", "board_digits", "check_box_shape"]


def check_box_shape(box_shape: object) -> tuple[int, int]:
    """Validate a box shape ``(rows, cols)``; the board side is ``rows · cols``."""
    if (not isinstance(box_shape, (tuple, list)) or len(box_shape) != 2
            or not all(is_int(v) and v >= 1 for v in box_shape)):
        raise ValueError(f"box_shape: expected a pair of positive integers (rows, cols), e.g. (3, 3) for 9×9 "
                         f"boards or (2, 3) for 6×6, got {box_shape!r}")
    if box_shape[0] * box_shape[1] < 2:
        raise ValueError(f"box_shape: the board side rows·cols must be at least 2, got {box_shape!r}")
    return int(box_shape[0]), int(box_shape[1])


def board_digits(board: object, size: int, name: str = "board") -> tuple[torch.Tensor, torch.Tensor]:
    """Integer digits and the given-cell mask of a board in either input format.

    Args:
        board: integer grid ``[B, S, S]`` (values ``0…S``, 0 = blank, any integer dtype) or
            one-hot ``[B, S, S, S]`` (bool, integer or floating; all-zero = blank).
        size: the board side S.
        name: argument name used in error messages.

    Returns:
        ``(digits, given)``: ``digits`` ``[B, S, S]`` int64 in ``0…S``, ``given`` ``[B, S, S]``
        bool (True where a digit is given).

    Raises:
        TypeError: not a tensor, or a floating-point integer grid.
        ValueError: wrong shape; on CPU also values out of range or a one-hot cell with more
            than one 1 (checked there only: on an accelerator the check would force a sync).
    """
    if not isinstance(board, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(board).__name__}")
    s = size
    check_values = board.device.type == "cpu"
    if board.dim() == 3:
        if board.shape[1:] != (s, s):
            raise ValueError(f"{name}: expected an integer grid [B, {s}, {s}] or one-hot [B, {s}, {s}, {s}], "
                             f"got shape {tuple(board.shape)}")
        if board.is_floating_point() or board.is_complex() or board.dtype == torch.bool:
            raise TypeError(f"{name}: an integer grid [B, S, S] must have an integer dtype, got {board.dtype}")
        digits = board.long()
        if check_values and board.numel() and (int(digits.min()) < 0 or int(digits.max()) > s):
            raise ValueError(f"{name}: digits must lie in 0…{s} (0 = blank), got values in "
                             f"[{int(digits.min())}, {int(digits.max())}]")
        return digits, digits > 0
    if board.dim() == 4:
        if board.shape[1:] != (s, s, s):
            raise ValueError(f"{name}: expected one-hot [B, {s}, {s}, {s}] or an integer grid [B, {s}, {s}], "
                             f"got shape {tuple(board.shape)}")
        if board.is_complex():
            raise TypeError(f"{name}: expected a real or bool one-hot tensor, got {board.dtype}")
        if check_values and board.numel():
            ok = ((board == 0) | (board == 1)).all() and (board.to(torch.int64).sum(-1) <= 1).all()
            if not bool(ok):
                raise ValueError(f"{name}: a one-hot board must hold 0/1 values with at most one 1 per cell")
        hot = board != 0
        given = hot.any(dim=-1)
        digits = (hot.to(torch.int64).argmax(dim=-1) + 1) * given
        return digits, given
    raise ValueError(f"{name}: expected an integer grid [B, {s}, {s}] or one-hot [B, {s}, {s}, {s}], "
                     f"got shape {tuple(board.shape)}")


class SudokuAKOrN(nn.Module):
    """AKOrN Sudoku solver (docs/AKORN.md §4.2).

    Each cell is a token carrying ``C/n`` oscillators. The digit embedding
    ``Embedding(S+1, C)`` of the board is the stimulus ``c [B, C, S, S]``; the oscillators of
    given cells start at their (normalised) embedding, those of blank cells at random points.
    Every block runs a Kuramoto layer (attention coupling with GTA on the ``S × S`` grid,
    learnable step size γ, global learned Ω, no stimulus normalisation) and a readout
    ``ReadOut(C → C, group=n, 1×1)`` followed, with ``nl=True``, by the non-linear tail
    ``ResBlock(FF(C, C, hidden=C, 1×1, no norm)) → ReLU → conv 1×1``. The last readout goes
    through ``ReLU → conv 1×1 (C → S)`` to per-cell digit logits.

    Args:
        box_shape: ``(rows, cols)`` of a box; board side ``S = rows · cols`` (default (3, 3)).
        width: channels C (512), a multiple of ``n`` and ``heads``.
        depth: Kuramoto blocks L (1). Block ``l+1`` takes the readout of block ``l`` as its
            stimulus and its final state as initial state.
        n: oscillator dimension (4).
        steps: Kuramoto steps T in training (16); ``forward(steps=…)`` runs any T (the paper
            evaluates with 128).
        gamma: initial step size γ (1.0).
        learn_gamma: train γ (True, as in the official Sudoku model).
        gamma_max: bound the learnt γ to ``γ_max · sigmoid(θ)`` (see
            :class:`~networks.layer.KuramotoLayer`); ``None`` (default): a free γ as in the official code.
        method: the Kuramoto layers' fixed-step integrator (``"euler_normalized"``, the paper's
            update; any native fixed-step method of ``integrators.METHODS``).
        coupling: ``"attn"`` (the paper's) or ``"conv"`` (kernel ``kernel_size``).
        heads: attention heads (8; head size 64 at width 512).
        gta: geometric transform attention on the cell grid (True).
        kernel_size: kernel of the conv coupling (only with ``coupling="conv"``).
        omega: initial global ω (0.5), or ``None`` for Ω = 0.
        learn_omega: train ω (True).
        global_omega: one ω per layer (True) or one per channel pair.
        nl: non-linear readout tail (True).
        fixed_noise: start blank cells from fixed noise instead of fresh noise, exactly as the
            official deterministic option: every forward draws one ``[B, C, S, S]`` standard
            normal tensor from a new CPU generator seeded 42 (in the default dtype) and item ``b``
            takes slice ``b``, so items of a batch get different noise and an item's noise
            depends on its position (:meth:`fixed_noise_like`).

    Paper values: width 512, n 4, L 1, T 16 (eval 128), 8 heads, Ω init 0.5 learned, γ learned
    from 1, Adam 1e-3.
    """

    def __init__(self, box_shape: tuple[int, int] = (3, 3), width: int = 512, depth: int = 1, n: int = 4,
                 steps: int = 16, gamma: float = 1.0, learn_gamma: bool = True, gamma_max: float | None = None,
                 method: str = "euler_normalized",
                 coupling: Literal["attn", "conv"] = "attn", heads: int = 8, gta: bool = True, kernel_size: int = 3,
                 omega: float | None = 0.5, learn_omega: bool = True, global_omega: bool = True, nl: bool = True,
                 fixed_noise: bool = False) -> None:
        super().__init__()
        self.box_shape = check_box_shape(box_shape)
        s = self.size = self.box_shape[0] * self.box_shape[1]
        check_count(width, "width")
        check_count(depth, "depth")
        check_count(n, "n", minimum=2)
        if width % n:
            raise ValueError(f"width: must be a multiple of n={n}, got {width}")
        check_coupling_name(coupling)
        if omega is not None and n % 2:
            raise ValueError(f"omega: the rotation Ω needs an even n, got n={n}; pass omega=None")
        self.width, self.n, self.depth, self.steps = width, n, depth, steps
        self.embed = nn.Embedding(s + 1, width)
        self.layers = nn.ModuleList()
        self.readouts = nn.ModuleList()
        options = {"kernel_size": kernel_size, "heads": heads, "gta": gta, "grid": (s, s) if gta else None}
        for _ in range(depth):
            self.layers.append(kuramoto_block(coupling, width, n, omega=omega, learn_omega=learn_omega,
                                              global_omega=global_omega, coupling_options=options, stimulus_norm="none",
                                              steps=steps, gamma=gamma, learn_gamma=learn_gamma, gamma_max=gamma_max,
                                              method=method))
            tail: list[nn.Module] = [ReadOut(width, width, group=n, kernel_size=1)]
            if nl:
                tail += [ResBlock(FF(width, width, hidden=width, kernel_size=1, norm="none")), nn.ReLU(),
                         nn.Conv2d(width, width, 1)]
            self.readouts.append(nn.Sequential(*tail))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(width, s, 1))
        self.fixed_noise = bool(fixed_noise)

    @classmethod
    def tiny(cls, box_shape: tuple[int, int] = (3, 3), **kwargs: object) -> SudokuAKOrN:
        """32 channels, n = 4, 4 heads, T = 4, for tests."""
        cfg = dict(width=32, depth=1, n=4, steps=4, heads=4)
        cfg.update(kwargs)
        return cls(box_shape, **cfg)  # type: ignore[arg-type]

    def stimulus(self, board: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Digit embedding and given mask.

        Args:
            board: ``[B, S, S]`` integer grid or ``[B, S, S, S]`` one-hot.

        Returns:
            ``(c, given)``: ``c`` ``[B, C, S, S]``, ``given`` ``[B, 1, S, S]`` bool.
        """
        digits, given = board_digits(board, self.size)
        c = self.embed(digits.to(self.embed.weight.device)).permute(0, 3, 1, 2)
        return c, given.to(c.device).unsqueeze(1)

    def initial_state(self, board: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Oscillators at step 0: the normalised embedding at given cells, noise at blanks.

        Args:
            board: ``[B, S, S]`` integer grid or ``[B, S, S, S]`` one-hot.
            generator: random generator for the blank-cell noise (ignored with ``fixed_noise``).

        Returns:
            ``[B, C, S, S]``, unit length per group of ``n`` channels.
        """
        c, given = self.stimulus(board)
        return self._initial_state(c, given, generator)

    @staticmethod
    def fixed_noise_like(c: torch.Tensor) -> torch.Tensor:
        """The official fixed noise for a stimulus ``c`` ``[B, C, S, S]``: one standard normal draw of
        ``c``'s shape from a fresh CPU generator seeded 42, in the default dtype (as the official
        ``torch.randn(*c.shape, generator=...manual_seed(42))``), then moved to ``c``'s device and
        dtype. Item ``b`` of the batch gets slice ``b`` of that draw."""
        g = torch.Generator(device="cpu").manual_seed(42)
        return torch.randn(c.shape, generator=g).to(device=c.device, dtype=c.dtype)

    def _initial_state(self, c: torch.Tensor, given: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if not self.fixed_noise:
            return layer_initial_state(c, self.n, "given", given_mask=given, generator=generator)
        return _normalize_groups(torch.where(given, c, self.fixed_noise_like(c)), self.n)

    def forward(self, board: torch.Tensor, *, steps: int | None = None, generator: torch.Generator | None = None,
                return_energy: bool = False, return_trajectory: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, Trajectory]:
        """Per-cell digit logits.

        Args:
            board: integer grid ``[B, S, S]`` (0 = blank) or one-hot ``[B, S, S, S]``.
            steps: Kuramoto steps T of every layer (default: the constructor's).
            generator: random generator of the blank-cell noise (ignored with ``fixed_noise``).
            return_energy: also return the per-step energies of the last Kuramoto layer.

        Returns:
            ``logits`` ``[B, S, S, S]`` (last axis = digit ``1…S``), and with
            ``return_energy=True`` also ``energy`` ``[T+1, B]``: the energy the official code
            logs (``Trajectory.logged_energy``: entry 0 is zero, entry ``t`` is
            ``−Σ x_{t−1} ⊙ (J x_{t−1} + c)``). Energy voting keeps the copy with the lowest
            last entry or sum. With ``return_trajectory=True`` instead: the last Kuramoto layer's
            :class:`~networks.layer.Trajectory` (both the logged energies and the paper's
            ``E(x_t)`` of every state, without the states).

        Raises:
            ValueError: both ``return_energy`` and ``return_trajectory``.
        """
        if return_energy and return_trajectory:
            raise ValueError("return_energy, return_trajectory: ask for one (the trajectory holds the logged "
                             "energy too)")
        c, given = self.stimulus(board)
        x = self._initial_state(c, given, generator)
        traj = None
        for i, (layer, readout) in enumerate(zip(self.layers, self.readouts)):
            last = i == self.depth - 1
            if last and (return_energy or return_trajectory):
                x, traj = layer(c, x, steps=steps, return_trajectory=True, save_states=False)
            else:
                x = layer(c, x, steps=steps)
            c = readout(x)
        logits = self.head(c).permute(0, 2, 3, 1)
        if return_energy:
            return logits, traj.logged_energy
        if return_trajectory:
            return logits, traj
        return logits

    def logits_along(self, board: torch.Tensor, *, steps: int | None = None,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The answer read out at every step of the last block: what more steps do to it.

        Runs ``forward`` once and applies the last readout and the head to every state
        ``x_0 … x_T`` of the last Kuramoto layer. With ``depth == 1`` entry ``t`` equals
        ``forward(board, steps=t)`` for the same noise; with ``depth > 1`` the earlier blocks
        run all T steps and only the last one is read out along the way.

        Args:
            board: ``[B, S, S]`` integer grid or ``[B, S, S, S]`` one-hot.
            steps: Kuramoto steps T of every layer (default: the constructor's).
            generator: random generator of the blank-cell noise (ignored with ``fixed_noise``).

        Returns:
            ``(logits, energy)``: logits ``[T+1, B, S, S, S]`` and the paper's energy
            ``E(x_t)`` ``[T+1, B]`` of the last layer's states.
        """
        c, given = self.stimulus(board)
        x = self._initial_state(c, given, generator)
        for layer, readout in zip(self.layers[:-1], self.readouts[:-1]):
            x = layer(c, x, steps=steps)
            c = readout(x)
        _, traj = self.layers[-1](c, x, steps=steps, return_trajectory=True)
        # one state at a time: T+1 readouts of a whole batch at once would hold T+1 feature maps
        logits = torch.stack([self.head(self.readouts[-1](state)).permute(0, 2, 3, 1) for state in traj.states])
        return logits, traj.energy
