import sys

from aistpp.cli import main

sys.exit(main())
