import sys

from hermes_train.cli import main

sys.exit(main())
