"""The scanner's screen: the B-mode region (roi), its pixel spacing (spacing, read from the screen's
scale by scale_reader and ocr, or stated), and the prepare stage that applies both to each frame."""
