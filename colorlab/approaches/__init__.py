"""LightningModules, one family per file, all built on :class:`colorlab.approaches.base.ColorizationModule`."""
