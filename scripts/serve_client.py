"""The old name of `t2i-keras serve-client` (same flags; see `t2i-keras serve-client --help`)."""

import sys

from t2i_keras.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["serve-client", *sys.argv[1:]]))
