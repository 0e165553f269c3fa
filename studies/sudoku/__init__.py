"""``akorn sudoku``: the paper's reasoning study — train AKOrN, ItrSA and a Transformer on Sudoku, then
test them with more steps and with energy-based selection on harder, out-of-distribution boards.

``akorn sudoku train --model akorn|itrsa|transformer`` trains one model into
``<out>/<tag>/<model>/`` (checkpoint every epoch, resumed automatically; run it under
``torchrun`` for DDP). ``akorn sudoku eval`` evaluates the trained models on the
in-distribution and the OOD boards for every T and K and writes ``<out>/<tag>/sudoku.h5``
with ``sudoku.png`` and ``sudoku_boards.png``. Presets: ``quick`` (6×6 boards, width 64, 30
epochs: about an hour per model on one core), ``cpu`` (9×9 at width 128, resumed across
sessions until it converges), ``paper`` (the official 9×9 recipe at width 512, for a GPU).

Everything works for boards of any ``b_r × b_c`` boxes (``--box 2 2`` for 4×4, ``--box 3 3`` for 9×9).
Modules: :mod:`~studies.sudoku.config` (settings, presets, the command; torch-free), the data
(:mod:`~studies.sudoku.boards`, :mod:`~studies.sudoku.solver`, :mod:`~studies.sudoku.generate`,
:mod:`~studies.sudoku.dataset`, :mod:`~studies.sudoku.formats`, gathered in :mod:`~studies.sudoku.data`),
:mod:`~studies.sudoku.models`, :mod:`~studies.sudoku.metrics`, :mod:`~studies.sudoku.train`,
:mod:`~studies.sudoku.evaluate` with :mod:`~studies.sudoku.results`, and :mod:`~studies.sudoku.plots`.
"""
