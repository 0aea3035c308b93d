"""The built-in phantom scanner: simulated anatomy, machine and screens with exact truth, its frame
source (phantom://), and the recipes and seed ranges of every phantom data set the product draws.

Nothing on the device path imports this package; the runtime loads it only when a phantom source is
asked for.
"""
