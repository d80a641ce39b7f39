"""`python -m twinlm …` (what torchrun launches): the same as the `twinlm` command."""

import sys

from twinlm.cli import main

sys.exit(main())
