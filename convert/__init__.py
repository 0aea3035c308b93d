"""Host-side model conversion: train the U-Net, quantize it to int8 and package a model bundle."""
