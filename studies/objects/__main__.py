"""``python -m studies.objects train|eval ...``: the ``akorn objects`` command without the console script."""

import sys

from studies.commands import standalone
from studies.objects.config import TASK

if __name__ == "__main__":
    sys.exit(standalone(TASK))
