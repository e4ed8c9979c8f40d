"""colorlab: a PyTorch Lightning experiment framework for deep-learning image colorization."""

import os

# OpenMP threads that spin while they wait stall each other when the cores are shared (another run, a loader
# worker): measured on 2 busy cores, a unet_effnet step took 10.4 s spinning vs 3.3 s passive. It must be set
# before torch loads OpenMP, hence here; an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
