"""Labelled data sets: folders of images and masks with their config, read and written for
tlf-convert's training and validation and for tlf-edge bench's accuracy pass."""
