import sys

from arwave.cli.main import main

sys.exit(main())
