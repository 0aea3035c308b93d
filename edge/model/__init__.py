"""The model: its sealed bundle (int8 TFLite, manifest, response), the LiteRT segmenter and the
preprocessing shared with training."""
