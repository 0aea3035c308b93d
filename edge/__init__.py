"""tlf-edge device runtime: scanner video in, TLF mask and thickness out. Never imports TensorFlow."""

__version__ = "0.1.0"
