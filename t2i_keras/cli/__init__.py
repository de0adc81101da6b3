"""The `t2i-keras` command line: `main` parses and checks, `t2i_keras.cli.<subcommand>` runs."""
