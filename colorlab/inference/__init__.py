"""Inference: safe checkpoint loading, the one full-resolution colorize pipeline and model export."""
