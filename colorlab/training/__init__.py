"""Training: the Lightning CLI, run folders, callbacks, phases, the experiment pipeline, sweeps and the Zhang prior."""
