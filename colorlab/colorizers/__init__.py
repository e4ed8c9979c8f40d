"""The deployable part of every approach: plain ``nn.Module`` colorizers (net(s) plus decode).

Each approach in :mod:`colorlab.approaches` holds one of these as ``self.colorizer`` and adds losses,
optimizers and training steps around it. Tools (colorize, evaluate, serve, export) rebuild one from a
checkpoint with :func:`colorlab.colorizers.loading.load_colorizer`, without importing Lightning.
"""
