"""colorlab: a PyTorch Lightning experiment framework for deep-learning image colorization."""

__version__ = "0.1.0"
