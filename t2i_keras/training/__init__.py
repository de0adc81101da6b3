"""Training runs: the trainer, run directories, callbacks, backups, tf.distribute."""
