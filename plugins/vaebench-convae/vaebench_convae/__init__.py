"""vaebench-convae: a convolutional autoencoder plugin for vaebench (model ``conv-ae``)."""

__version__ = "0.1.0"
