"""Plain nn.Modules (no Lightning): encoders, U-Nets, critics, heads."""
