import sys

from samedge.cli.main import main

sys.exit(main())
