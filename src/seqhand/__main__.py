import sys

from seqhand.cli import main

sys.exit(main())
