import sys

from studies.bench import main

sys.exit(main())
