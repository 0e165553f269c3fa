"""``python -m studies.sudoku train|eval ...``: the ``akorn sudoku`` command without the console script."""

import sys

from studies.commands import standalone
from studies.sudoku.config import TASK

if __name__ == "__main__":
    sys.exit(standalone(TASK))
