"""``python -m studies.robustness train|eval ...``: the ``akorn robustness`` command without the console script."""

import sys

from studies.commands import standalone
from studies.robustness.config import TASK

if __name__ == "__main__":
    sys.exit(standalone(TASK))
