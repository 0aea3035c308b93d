"""The model zoo's trained weights (`tests/data/zoo_unet/weights.h5`) and the command that wrote them.

`tests/test_model_zoo.py` builds every structure of its zoo from one tiny U-Net's weights. Those
weights are trained once, here, and kept in the repository rather than trained by each run: a few
seconds of Adam on two cores land on different weights on different CPUs (TensorFlow's oneDNN
kernels take other paths on a Xeon with AMX than on an EPYC), and the tiny model trained on that
Xeon quantized 0.013-0.044 mean IoU below its float, which the gate rightly refuses. The
zoo tests what conversion does to a model, so they take the same model on every machine:

    python tests/zoo_weights.py

trains it (seed 4, 8 epochs of batch 16 on 320 phantom scans of a 16 mm field at 64 px, two heads:
a 3-class softmax and a one-channel TLF sigmoid) and writes the file, printing the float model's
mean IoU on the zoo's labelled scans. Write it again only when the zoo's U-Net changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).resolve().parent / "data" / "zoo_unet" / "weights.h5"  # HDF5: no pickles in the repository


def load(path: Path = WEIGHTS) -> dict[str, list[np.ndarray]]:
    """The weights by role, as `layer.get_weights()` gives them."""
    import h5py

    with h5py.File(path, "r") as f:
        return {role: [f[role][str(i)][()] for i in range(len(f[role]))] for role in f}


def train() -> tuple[dict[str, list[np.ndarray]], float]:
    """Trains the zoo's U-Net; returns its weights by role and its 3-class head's mean IoU on the
    zoo's 16 labelled scans."""
    import keras
    from conftest import small_field_set
    from test_model_zoo import Structure, _spec, build

    from edge.measure.metrics import scores
    from edge.model.preprocess import to_float

    s = Structure("trained", up="upsample")
    keras.utils.set_random_seed(4)
    body, roles = build(keras, s)
    binary = keras.layers.Conv2D(1, 1, activation="sigmoid", name="binary")
    two = keras.Model(body.input, [body.output, binary(roles["logits"].input)])
    x, y, _ = small_field_set(320, seed=1)
    two.compile(keras.optimizers.Adam(3e-3), ["categorical_crossentropy", "binary_crossentropy"])
    two.fit(to_float(x, _spec(64)), [keras.utils.to_categorical(y, 3), (y == 1)[..., None].astype(np.float32)],
            epochs=8, batch_size=16, verbose=0)
    out = {role: layer.get_weights() for role, layer in roles.items()}
    out["binary"] = binary.get_weights()
    images, labels, _ = small_field_set(16, seed=2)
    pred = np.argmax(body.predict(to_float(images, _spec(64)), verbose=0), axis=-1)
    return out, float(scores(labels, pred, 3)["mean_iou"])


def main() -> int:
    weights, miou = train()
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    import h5py

    with h5py.File(WEIGHTS, "w") as f:  # one group per role, its arrays "0", "1", ... in get_weights() order
        for role, arrays in weights.items():
            for i, a in enumerate(arrays):
                f.create_dataset(f"{role}/{i}", data=np.asarray(a, np.float32))
    print(f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size} bytes): float mean IoU {miou:.4f} on the zoo's labelled scans")
    return 0


if __name__ == "__main__":
    sys.exit(main())
