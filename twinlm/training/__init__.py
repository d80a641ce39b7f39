"""Training: one loop for every model, one step per backend, the tasks, checkpoints, schedule."""
