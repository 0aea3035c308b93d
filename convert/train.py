"""Training the U-Net: categorical cross-entropy on logits, Adam, batch 16 (the study's defaults)."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from convert.data import edge_weights, phantom_batch, phantom_coverage_batch
from convert.unet import build_unet
from edge.preprocess import PreprocessSpec, to_float


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 200
    batch_size: int = 16
    learning_rate: float = 1e-3
    patience: int = 20  # early stopping on validation loss
    seed: int = 0
    base_filters: int = 16
    depth: int = 4
    dropout: float = 0.0
    classes: int = 3
    class_weights: tuple[float, ...] | None = None  # per-class weights of the cross-entropy; None: all 1
    label_smoothing: float = 0.0  # bounds the logits, so that int8 keeps their small differences
    final_learning_rate: float | None = None  # cosine decay to this rate over the epochs; None: constant
    coverage_targets: bool = False  # phantom targets: each class's fraction of a pixel instead of one-hot
    display: float = 0.0  # share of phantom images enlarged first as on a scanner screen (convert.data.displayed)
    edge_weight: float = 0.0  # extra loss weight of the pixels at class boundaries (convert.data.edge_weights)
    edge_sigma_px: float = 1.0  # how far from a boundary that weight reaches (Gaussian sigma, model rows)
    height_weight: float = 0.0  # loss weight of each column's band height error (model rows; `with_band_height`)


class PhantomStream(keras.utils.PyDataset):
    """Fresh phantom batches every step (seeds never repeat across steps or epochs)."""

    def __init__(self, spec: PreprocessSpec, steps: int, batch_size: int, classes: int, seed: int,
                 coverage: bool = False, display: float = 0.0, edge_weight: float = 0.0, edge_sigma_px: float = 1.0):
        super().__init__()
        self.spec, self.steps, self.batch_size, self.classes, self.seed = spec, steps, batch_size, classes, seed
        self.coverage, self.display = coverage, display
        self.edge_weight, self.edge_sigma_px = edge_weight, edge_sigma_px
        self.epoch = 0

    def __len__(self):
        return self.steps

    def on_epoch_end(self):
        self.epoch += 1

    def __getitem__(self, i):
        first = self.seed + (self.epoch * self.steps + i) * self.batch_size
        if self.coverage:
            x, y = phantom_coverage_batch(range(first, first + self.batch_size), self.spec, display=self.display)
            labels = y.argmax(-1)
        else:
            x, labels = phantom_batch(range(first, first + self.batch_size), self.spec, display=self.display)
            y = keras.utils.to_categorical(labels, self.classes)
        if self.edge_weight:
            return to_float(x, self.spec), y, edge_weights(labels, self.edge_weight, self.edge_sigma_px)
        return to_float(x, self.spec), y


def weighted_crossentropy(class_weights, label_smoothing: float = 0.0):
    """Categorical cross-entropy on logits, each pixel weighted by its true class's weight.

    The TLF is a thin band (a few percent of the pixels); without a weight the model first
    learns to ignore it.
    """
    weights = keras.ops.convert_to_tensor(np.asarray(class_weights, np.float32))

    def loss(y_true, y_pred):
        ce = keras.losses.categorical_crossentropy(y_true, y_pred, from_logits=True, label_smoothing=label_smoothing)
        return ce * keras.ops.sum(y_true * weights, axis=-1)

    return loss


# Gain on the logit margin in the soft row count: a pixel off the band, at the margin label smoothing 0.1
# leaves (about 3.3), counts under 1e-4 of a row.
HEIGHT_SHARPNESS = 3.0


def with_band_height(ce_loss, weight: float, classes: int, class_weights=None, label_smoothing: float = 0.0,
                     tlf: int = 1, hard_targets: bool = True):
    """`ce_loss` plus `weight` times each image's mean absolute error of the band height per column
    (model rows), so the loss sees the thickness itself, not only which side of an edge each pixel
    centre lies.

    The drawn height is a soft count of the rows the band class wins, taken on the logits as the
    saved model will have them (the class weights' shift removed, `class_weight_shift`); the true
    height is the column sum of the band's targets: with coverage targets the exact sub-pixel
    height. hard_targets: the cross-entropy sees the targets' argmax as one-hot (coverage targets
    then feed only the height).
    """
    shift = keras.ops.convert_to_tensor(class_weight_shift(class_weights, label_smoothing) if class_weights is not None
                                        else np.zeros(classes, np.float32))
    is_band = keras.ops.convert_to_tensor(np.eye(classes, dtype=bool)[tlf])

    def loss(y_true, y_pred):
        ce = ce_loss(keras.ops.one_hot(keras.ops.argmax(y_true, axis=-1), classes) if hard_targets else y_true, y_pred)
        z = y_pred - shift
        margin = z[..., tlf] - keras.ops.max(keras.ops.where(is_band, -1e9, z), axis=-1)
        drawn = keras.ops.sum(keras.ops.sigmoid(HEIGHT_SHARPNESS * margin), axis=1)  # (N, W)
        true = keras.ops.sum(keras.ops.cast(y_true[..., tlf], drawn.dtype), axis=1)
        error = keras.ops.mean(keras.ops.abs(drawn - true), axis=-1)  # (N,)
        return ce + weight * error[:, None, None]

    return loss


def class_weight_shift(class_weights, label_smoothing: float = 0.0) -> np.ndarray:
    """How far a weighted cross-entropy moves each class's logit at the boundary with the least
    weighted class, where both are equally likely.

    The loss is minimised by p_k proportional to (1 - e) w_k q_k + e / K * sum_c w_c q_c (q: the
    true posterior, e: label smoothing, K: classes). Where q_c = q_r = 1/2 this makes the logit
    difference log(((1 - e) w_c + e / K (w_c + w_r)) / ((1 - e) w_r + e / K (w_c + w_r))), which
    is log(w_c / w_r) without smoothing and less with it. Exact for every pair with the least
    weighted class r (with weights (1, 6, 1) every pair that matters).
    """
    w = np.asarray(class_weights, np.float64)
    e, k, r = float(label_smoothing), w.size, float(w.min())
    mix = e / k * (w + r)
    return np.log(((1 - e) * w + mix) / ((1 - e) * r + mix)).astype(np.float32)


def remove_class_weight_prior(model: keras.Model, class_weights, label_smoothing: float = 0.0, layer: str = "logits") -> None:
    """Undo the shift that class weights give the decision boundaries, in place.

    The up-weighted TLF would grow at each edge; subtracting `class_weight_shift` from the final
    layer's bias puts the boundaries back where the unweighted posteriors cross: free at inference.
    """
    kernel, bias = model.get_layer(layer).get_weights()
    model.get_layer(layer).set_weights([kernel, bias - class_weight_shift(class_weights, label_smoothing)])


def compile_model(model: keras.Model, learning_rate, class_weights=None, label_smoothing: float = 0.0,
                  height_weight: float = 0.0, hard_targets: bool = True) -> keras.Model:
    """learning_rate: a number or a keras LearningRateSchedule. height_weight: see `with_band_height`."""
    loss = (weighted_crossentropy(class_weights, label_smoothing) if class_weights is not None
            else keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing))
    classes = model.output_shape[-1]
    if height_weight:
        loss = with_band_height(loss, height_weight, classes, class_weights, label_smoothing, hard_targets=hard_targets)
    metrics = ["accuracy", keras.metrics.OneHotMeanIoU(num_classes=classes, name="mean_iou")]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)
    return model


def train(
    out_dir: Path,
    spec: PreprocessSpec,
    options: TrainOptions,
    train_data=None,
    val_data=None,
    phantom_steps: int = 25,
    verbose: int = 1,
    resume: bool = False,
    init_weights: Path | None = None,
) -> Path:
    """Train and write `out_dir/model.keras` (best validation loss), `history.csv`, `train.json`.

    train_data/val_data: (uint8 images NxHxWxC, uint8 labels NxHxW); without train_data the
    model trains on a fresh phantom stream of `phantom_steps` batches per epoch.
    With `resume`, training continues from `out_dir/last.keras` after the epochs already in
    `history.csv`; `init_weights` starts a new training from a model's weights (fine-tuning,
    which must not have been prior-corrected). Returns the path of the best model.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(options.seed)
    history_csv = out_dir / "history.csv"
    done = len(read_history(history_csv)) if resume and history_csv.is_file() else 0
    model = build_unet(
        input_size=spec.height,
        channels=spec.channels,
        classes=options.classes,
        base_filters=options.base_filters,
        depth=options.depth,
        dropout=options.dropout,
        batch_size=None,
    )
    if options.class_weights is not None and len(options.class_weights) != options.classes:
        raise ValueError(f"{len(options.class_weights)} class weights given for {options.classes} classes")
    compile_model(model, learning_rate_of(options, steps_per_epoch(train_data, phantom_steps, options.batch_size)),
                  options.class_weights, options.label_smoothing, options.height_weight,
                  hard_targets=not options.coverage_targets)
    coverage = options.coverage_targets or options.height_weight > 0  # phantom heights to sub-pixel detail
    start_from = out_dir / "last.keras" if done else init_weights
    if start_from is not None:
        model.set_weights(keras.models.load_model(start_from, compile=False, safe_mode=True).get_weights())
    val_seeds = range(10_000_000 + options.seed, 10_000_000 + options.seed + 32)
    if val_data is None and coverage:
        images, targets = phantom_coverage_batch(val_seeds, spec)
        val = (to_float(images, spec), targets)
    else:
        val_data = phantom_batch(val_seeds, spec) if val_data is None else val_data
        val = (to_float(val_data[0], spec), keras.utils.to_categorical(val_data[1], options.classes))
    if train_data is None:
        fit_data = PhantomStream(spec, phantom_steps, options.batch_size, options.classes, options.seed,
                                 coverage, options.display, options.edge_weight, options.edge_sigma_px)
        fit_data.epoch = done
        fit_kwargs = {}
    else:
        fit_data = to_float(train_data[0], spec)
        fit_kwargs = {"y": keras.utils.to_categorical(train_data[1], options.classes), "batch_size": options.batch_size}
        if options.edge_weight:
            fit_kwargs["sample_weight"] = edge_weights(train_data[1], options.edge_weight, options.edge_sigma_px)
    best = out_dir / "model.keras"
    callbacks = [
        keras.callbacks.ModelCheckpoint(best, monitor="val_loss", save_best_only=True, initial_value_threshold=_best_val_loss(history_csv) if done else None),
        keras.callbacks.ModelCheckpoint(out_dir / "last.keras"),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=options.patience, restore_best_weights=True),
        keras.callbacks.CSVLogger(str(history_csv), append=bool(done)),
    ]
    model.fit(fit_data, validation_data=val, epochs=options.epochs, initial_epoch=done, callbacks=callbacks,
              verbose=verbose, **fit_kwargs)
    plot_history(history_csv, out_dir / "history.png")
    if options.class_weights is not None:
        best_model = keras.models.load_model(best, compile=False, safe_mode=True)
        remove_class_weight_prior(best_model, options.class_weights, options.label_smoothing)
        best_model.save(best)
    info = {"options": asdict(options), "preprocess": spec.to_dict(), "prior_corrected": options.class_weights is not None}
    (out_dir / "train.json").write_text(json.dumps(info, indent=2))
    return best


def steps_per_epoch(train_data, phantom_steps: int, batch_size: int) -> int:
    return phantom_steps if train_data is None else max(1, -(-len(train_data[0]) // batch_size))


def learning_rate_of(options: TrainOptions, steps: int):
    """The constant rate, or a cosine decay from learning_rate to final_learning_rate over all epochs
    (a resumed run starts the decay again over its remaining epochs)."""
    if options.final_learning_rate is None:
        return options.learning_rate
    if not 0 < options.final_learning_rate <= options.learning_rate:
        raise ValueError(f"final learning rate {options.final_learning_rate!r} must be in (0, {options.learning_rate!r}]")
    return keras.optimizers.schedules.CosineDecay(options.learning_rate, decay_steps=max(1, options.epochs * steps),
                                                  alpha=options.final_learning_rate / options.learning_rate)


def _best_val_loss(history_csv: Path) -> float | None:
    losses = [row["val_loss"] for row in read_history(history_csv) if "val_loss" in row]
    return min(losses) if losses else None


def plot_history(history_csv: Path, png: Path) -> None:
    """Training and validation accuracy and loss per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_history(history_csv)
    if not rows:
        return
    epochs = [r["epoch"] + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("accuracy", "loss")):
        ax.plot(epochs, [r.get(key) for r in rows], label="training")
        ax.plot(epochs, [r.get("val_" + key) for r in rows], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def read_history(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
