"""``python -m mixclust`` (and ``torchrun -m mixclust``) runs the command line."""

import sys

from .cli import main

sys.exit(main())
