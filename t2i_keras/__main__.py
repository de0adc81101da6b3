"""`python -m t2i_keras`: the `t2i-keras` command line (`t2i_keras.cli.main`)."""

import sys

from t2i_keras.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
