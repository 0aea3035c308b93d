"""Recording a bundle's domain statistics (edge.measure.domain) into its manifest: `tlf-convert domain`,
and the last step of `quantize` and `cv`.

Image statistics come from training images, the confidence margins from the bundle's own int8
model on held-out images (images it was not trained on, so that their margins are those of new
frames of the same kind). Both sets are model images, preprocessed as the device does.
"""

from __future__ import annotations

import numpy as np

from edge.measure.domain import fit_domain, image_features, margin_features
from edge.model.bundle import Bundle, update_manifest
from edge.model.segmenter import Segmenter


def domain_model(
    bundle: Bundle,
    train_images: np.ndarray,
    heldout_images: np.ndarray | None,
    fitted_on: str = "",
    margins_on: str = "",
    threads: int = 2,
):
    """The edge.measure.domain.DomainModel of these images for this bundle's int8 model."""
    features = np.stack([image_features(im) for im in train_images])
    margins = None
    if heldout_images is not None and len(heldout_images):
        seg = Segmenter(bundle, threads)
        margins = [margin_features(seg.logits(seg.infer(im)), seg.logit_scale) for im in heldout_images]
    return fit_domain(features, margins, fitted_on, margins_on if margins is not None else "")


def record_domain(
    bundle: Bundle,
    train_images: np.ndarray,
    heldout_images: np.ndarray | None,
    fitted_on: str = "",
    margins_on: str = "",
    threads: int = 2,
) -> Bundle:
    """Write the domain statistics into the bundle's manifest (sealed again); the bundle reloaded."""
    model = domain_model(bundle, train_images, heldout_images, fitted_on, margins_on, threads)
    return update_manifest(bundle, domain=model.to_dict())
