"""Training the U-Net: categorical cross-entropy on logits, Adam, batch 16 (the study's defaults).

Options beyond the study's recipe: Dice + cross-entropy or focal loss (`loss`), augmentation of
labelled images (`augment`, convert.augment), and the validation figure that picks the best
epoch and stops early (`select`: band Dice, mean IoU or the loss).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from convert.augment import AugmentOptions, augment_batch
from convert.data import edge_weights, phantom_batch, phantom_coverage_batch
from convert.errors import ConvertError
from convert.unet import build_unet
from edge.measure.metrics import scores
from edge.model.preprocess import PreprocessSpec, to_float

LOSSES = ("ce", "dice_ce", "focal")  # cross-entropy (the study's), Dice + cross-entropy, focal
SELECTIONS = ("band_dice", "mean_iou", "val_loss")  # what picks the best epoch and stops early
# The figures the selection callback adds to each epoch's logs, and which way is better.
SELECTED_LOG = {
    "band_dice": ("val_band_dice", "max"),
    "mean_iou": ("val_mean_iou", "max"),
    "val_loss": ("val_loss", "min"),
}


def default_selection(classes: int) -> str:
    """Band Dice for a two-class (background / band) model, mean IoU otherwise."""
    return "band_dice" if classes == 2 else "mean_iou"


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 200
    batch_size: int = 16
    learning_rate: float = 1e-3
    patience: int = 20  # early stopping: epochs without a better `select` figure
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
    loss: str = "ce"  # one of LOSSES; class weights weigh the cross-entropy part (focal: its alpha)
    dice_weight: float = 1.0  # dice_ce: weight of the soft Dice term beside the cross-entropy
    focal_gamma: float = 2.0  # focal: the focusing exponent
    select: str | None = None  # one of SELECTIONS; None: `default_selection(classes)`
    augment: AugmentOptions | None = None  # labelled data only; None: the images as they are
    band_class: int = 1  # the band (TLF) class of band_dice

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ConvertError(f"loss {self.loss!r} is not one of {', '.join(LOSSES)}")
        if self.select is not None and self.select not in SELECTIONS:
            raise ConvertError(f"selection {self.select!r} is not one of {', '.join(SELECTIONS)}")
        if not 0 <= self.band_class < self.classes:
            raise ConvertError(f"band class {self.band_class!r} is not one of {self.classes} classes")
        if self.loss != "ce" and (self.height_weight or self.coverage_targets):
            raise ConvertError("the band-height term and coverage targets go with the cross-entropy loss only")

    @property
    def selection(self) -> str:
        return self.select or default_selection(self.classes)

    @property
    def prior_shift(self) -> bool:
        """Whether the class weights' shift of the boundaries is known and removed after training
        (`class_weight_shift` is exact for the weighted cross-entropy only)."""
        return self.class_weights is not None and self.loss == "ce"


class PhantomStream(keras.utils.PyDataset):
    """Fresh phantom batches every step (seeds never repeat across steps or epochs)."""

    def __init__(
        self,
        spec: PreprocessSpec,
        steps: int,
        batch_size: int,
        classes: int,
        seed: int,
        coverage: bool = False,
        display: float = 0.0,
        edge_weight: float = 0.0,
        edge_sigma_px: float = 1.0,
    ):
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


class LabelledStream(keras.utils.PyDataset):
    """Batches of labelled model images, augmented afresh every epoch (convert.augment).

    images: uint8 (N, H, W, C) model images; labels: (N, H, W). The order of the images is drawn
    anew each epoch and every image's augmentation from (seed, epoch, image), so a run repeats
    exactly, resumed or not (set `epoch` to the epochs done).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        spec: PreprocessSpec,
        batch_size: int,
        classes: int,
        augment: AugmentOptions,
        seed: int,
        edge_weight: float = 0.0,
        edge_sigma_px: float = 1.0,
    ):
        super().__init__()
        self.images, self.labels, self.spec, self.batch_size = images, labels, spec, batch_size
        self.classes, self.augment, self.seed = classes, augment, seed
        self.edge_weight, self.edge_sigma_px = edge_weight, edge_sigma_px
        self.epoch = 0

    def __len__(self):
        return max(1, -(-len(self.images) // self.batch_size))

    def on_epoch_end(self):
        self.epoch += 1

    def __getitem__(self, i):
        order = np.random.default_rng([self.seed, self.epoch, 2405]).permutation(len(self.images))
        idx = order[i * self.batch_size : (i + 1) * self.batch_size]
        x, labels = augment_batch(self.images, self.labels, self.augment, self.seed, self.epoch, idx)
        y = keras.utils.to_categorical(labels, self.classes)
        if self.edge_weight:
            return to_float(x, self.spec), y, edge_weights(labels, self.edge_weight, self.edge_sigma_px)
        return to_float(x, self.spec), y


class ValidationScores(keras.callbacks.Callback):
    """After each epoch, the validation set's band Dice and mean IoU into the epoch's logs
    (`val_band_dice`, `val_mean_iou`), so that the checkpoint and early stopping can follow them.

    The label maps are the argmax of the logits as the saved model will give them: with the
    class weights' shift already removed (`shift`, `class_weight_shift`). Scores are those of
    edge.measure.metrics over the whole set, as validation computes them. A band absent from both the
    labels and the prediction counts as Dice 0.
    """

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, classes: int, band: int, shift=None, batch_size: int = 8
    ):
        super().__init__()
        self.images, self.labels, self.classes, self.band, self.batch_size = images, labels, classes, band, batch_size
        self.shift = np.zeros(classes, np.float32) if shift is None else np.asarray(shift, np.float32)

    def on_epoch_end(self, epoch, logs=None):
        logits = self.model.predict(self.images, batch_size=self.batch_size, verbose=0)
        pred = np.argmax(logits - self.shift, axis=-1)
        s = scores(self.labels, pred, self.classes)
        dice = s["dice"][self.band]
        if logs is not None:
            logs["val_band_dice"] = 0.0 if np.isnan(dice) else float(dice)
            logs["val_mean_iou"] = float(s["mean_iou"])


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


def dice_plus_crossentropy(ce_loss, classes: int, dice_weight: float = 1.0, smooth: float = 1.0):
    """`ce_loss` plus `dice_weight` times (1 - the soft Dice of the batch, averaged over the
    classes), the Dice on softmax probabilities summed over every pixel of the batch. The Dice
    term weighs a thin band as much as the large classes whatever its pixel count."""

    def loss(y_true, y_pred):
        ce = ce_loss(y_true, y_pred)
        p = keras.ops.softmax(y_pred, axis=-1)
        t = keras.ops.cast(y_true, p.dtype)
        inter = keras.ops.sum(p * t, axis=(0, 1, 2))
        total = keras.ops.sum(p + t, axis=(0, 1, 2))
        dice = keras.ops.mean((2.0 * inter + smooth) / (total + smooth))
        return ce + dice_weight * (1.0 - dice)

    return loss


def focal_loss(class_weights=None, gamma: float = 2.0, label_smoothing: float = 0.0, classes: int = 3):
    """Focal loss on logits: the cross-entropy of each pixel times (1 - p)^gamma, p the model's
    probability of the true class, so that pixels already right weigh little; each pixel also
    weighted by its true class's weight (the focal loss's alpha)."""
    weights = keras.ops.convert_to_tensor(
        np.ones(classes, np.float32) if class_weights is None else np.asarray(class_weights, np.float32)
    )

    def loss(y_true, y_pred):
        t = keras.ops.cast(y_true, y_pred.dtype)
        if label_smoothing:
            t = t * (1.0 - label_smoothing) + label_smoothing / classes
        logp = keras.ops.log_softmax(y_pred, axis=-1)
        ce = -keras.ops.sum(t * logp, axis=-1)
        p_true = keras.ops.sum(t * keras.ops.exp(logp), axis=-1)
        return (
            keras.ops.power(1.0 - p_true, gamma)
            * ce
            * keras.ops.sum(keras.ops.cast(y_true, y_pred.dtype) * weights, axis=-1)
        )

    return loss


# Gain on the logit margin in the soft row count: a pixel off the band, at the margin label smoothing 0.1
# leaves (about 3.3), counts under 1e-4 of a row.
HEIGHT_SHARPNESS = 3.0


def with_band_height(
    ce_loss,
    weight: float,
    classes: int,
    class_weights=None,
    label_smoothing: float = 0.0,
    tlf: int = 1,
    hard_targets: bool = True,
):
    """`ce_loss` plus `weight` times each image's mean absolute error of the band height per column
    (model rows), so the loss sees the thickness itself, not only which side of an edge each pixel
    centre lies.

    The drawn height is a soft count of the rows the band class wins, taken on the logits as the
    saved model will have them (the class weights' shift removed, `class_weight_shift`); the true
    height is the column sum of the band's targets: with coverage targets the exact sub-pixel
    height. hard_targets: the cross-entropy sees the targets' argmax as one-hot (coverage targets
    then feed only the height).
    """
    shift = keras.ops.convert_to_tensor(
        class_weight_shift(class_weights, label_smoothing)
        if class_weights is not None
        else np.zeros(classes, np.float32)
    )
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


def remove_class_weight_prior(
    model: keras.Model, class_weights, label_smoothing: float = 0.0, layer: str = "logits"
) -> None:
    """Undo the shift that class weights give the decision boundaries, in place.

    The up-weighted TLF would grow at each edge; subtracting `class_weight_shift` from the final
    layer's bias puts the boundaries back where the unweighted posteriors cross: free at inference.
    """
    kernel, bias = model.get_layer(layer).get_weights()
    model.get_layer(layer).set_weights([kernel, bias - class_weight_shift(class_weights, label_smoothing)])


def compile_model(
    model: keras.Model,
    learning_rate,
    class_weights=None,
    label_smoothing: float = 0.0,
    height_weight: float = 0.0,
    hard_targets: bool = True,
    loss_name: str = "ce",
    dice_weight: float = 1.0,
    focal_gamma: float = 2.0,
) -> keras.Model:
    """learning_rate: a number or a keras LearningRateSchedule. height_weight: see `with_band_height`.
    loss_name: one of LOSSES (dice_ce: `dice_plus_crossentropy` with `dice_weight`; focal:
    `focal_loss` with `focal_gamma`)."""
    classes = model.output_shape[-1]
    if loss_name == "focal":
        loss = focal_loss(class_weights, focal_gamma, label_smoothing, classes)
    else:
        loss = (
            weighted_crossentropy(class_weights, label_smoothing)
            if class_weights is not None
            else keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)
        )
    if loss_name == "dice_ce":  # the cross-entropy per pixel, the Dice per batch
        ce = weighted_crossentropy(np.ones(classes) if class_weights is None else class_weights, label_smoothing)
        loss = dice_plus_crossentropy(ce, classes, dice_weight)
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
    """Train and write `out_dir/model.keras` (the best epoch), `history.csv`, `train.json`.

    train_data/val_data: (uint8 images NxHxWxC, uint8 labels NxHxW); without train_data the
    model trains on a fresh phantom stream of `phantom_steps` batches per epoch. With
    `options.augment`, labelled training images are augmented afresh every epoch (LabelledStream).
    The best epoch is the one with the best `options.selection` figure on the validation data
    (band Dice, mean IoU or loss; `ValidationScores`), and training stops after `patience`
    epochs without a better one.
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
        raise ConvertError(f"{len(options.class_weights)} class weights given for {options.classes} classes")
    if options.augment is not None and train_data is None:
        raise ConvertError("augmentation is for labelled images; the phantom stream draws new scenes every step")
    compile_model(
        model,
        learning_rate_of(options, steps_per_epoch(train_data, phantom_steps, options.batch_size)),
        options.class_weights,
        options.label_smoothing,
        options.height_weight,
        hard_targets=not options.coverage_targets,
        loss_name=options.loss,
        dice_weight=options.dice_weight,
        focal_gamma=options.focal_gamma,
    )
    coverage = options.coverage_targets or options.height_weight > 0  # phantom heights to sub-pixel detail
    start_from = out_dir / "last.keras" if done else init_weights
    if start_from is not None:
        model.set_weights(keras.models.load_model(start_from, compile=False, safe_mode=True).get_weights())
    from edge.sim.recipes import TRAINING_VALIDATION_SEEDS

    val_seeds = range(TRAINING_VALIDATION_SEEDS + options.seed, TRAINING_VALIDATION_SEEDS + options.seed + 32)
    if val_data is None and coverage:
        images, targets = phantom_coverage_batch(val_seeds, spec)
        val = (to_float(images, spec), targets)
        val_labels = targets.argmax(-1)
    else:
        val_data = phantom_batch(val_seeds, spec) if val_data is None else val_data
        val = (to_float(val_data[0], spec), keras.utils.to_categorical(val_data[1], options.classes))
        val_labels = val_data[1]
    if train_data is None:
        fit_data = PhantomStream(
            spec,
            phantom_steps,
            options.batch_size,
            options.classes,
            options.seed,
            coverage,
            options.display,
            options.edge_weight,
            options.edge_sigma_px,
        )
        fit_data.epoch = done
        fit_kwargs: dict = {}
    elif options.augment is not None:
        fit_data = LabelledStream(
            train_data[0],
            train_data[1],
            spec,
            options.batch_size,
            options.classes,
            options.augment,
            options.seed,
            options.edge_weight,
            options.edge_sigma_px,
        )
        fit_data.epoch = done
        fit_kwargs = {}
    else:
        fit_data = to_float(train_data[0], spec)
        fit_kwargs = {"y": keras.utils.to_categorical(train_data[1], options.classes), "batch_size": options.batch_size}
        if options.edge_weight:
            fit_kwargs["sample_weight"] = edge_weights(train_data[1], options.edge_weight, options.edge_sigma_px)
    best = out_dir / "model.keras"
    monitor, mode = SELECTED_LOG[options.selection]
    shift = class_weight_shift(options.class_weights, options.label_smoothing) if options.prior_shift else None
    callbacks = [
        ValidationScores(val[0], val_labels, options.classes, options.band_class, shift),
        keras.callbacks.ModelCheckpoint(
            best,
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            initial_value_threshold=_best_logged(history_csv, monitor, mode) if done else None,
        ),
        keras.callbacks.ModelCheckpoint(out_dir / "last.keras"),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=options.patience, restore_best_weights=True),
        keras.callbacks.CSVLogger(str(history_csv), append=bool(done)),
    ]
    model.fit(
        fit_data,
        validation_data=val,
        epochs=options.epochs,
        initial_epoch=done,
        callbacks=callbacks,
        verbose=verbose,
        **fit_kwargs,
    )
    plot_history(history_csv, out_dir / "history.png", monitor)
    if options.prior_shift:
        best_model = keras.models.load_model(best, compile=False, safe_mode=True)
        remove_class_weight_prior(best_model, options.class_weights, options.label_smoothing)
        best_model.save(best)
    rows = read_history(history_csv)
    picked = (max if mode == "max" else min)(rows, key=lambda r: r.get(monitor, float("nan"))) if rows else {}
    info = {
        "options": asdict(options),
        "preprocess": spec.to_dict(),
        "prior_corrected": options.prior_shift,
        "selection": {
            "figure": monitor,
            "epoch": int(picked["epoch"]) + 1 if picked else None,
            "value": picked.get(monitor),
            "epochs_run": len(rows),
        },
    }
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
        raise ConvertError(
            f"final learning rate {options.final_learning_rate!r} must be in (0, {options.learning_rate!r}]"
        )
    return keras.optimizers.schedules.CosineDecay(
        options.learning_rate,
        decay_steps=max(1, options.epochs * steps),
        alpha=options.final_learning_rate / options.learning_rate,
    )


def _best_logged(history_csv: Path, key: str, mode: str) -> float | None:
    """The best value of `key` in a history (mode "max" or "min"), None without one."""
    values = [row[key] for row in read_history(history_csv) if key in row and np.isfinite(row[key])]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def plot_history(history_csv: Path, png: Path, selected: str | None = None) -> None:
    """Training and validation loss per epoch, the validation band Dice and mean IoU, and the
    figure that picked the best epoch (marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_history(history_csv)
    if not rows:
        return
    epochs = [r["epoch"] + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].plot(epochs, [r.get("loss") for r in rows], label="training")
    axes[0].plot(epochs, [r.get("val_loss") for r in rows], label="validation")
    axes[0].set_ylabel("loss")
    for key, name in (
        ("val_band_dice", "validation band Dice"),
        ("val_mean_iou", "validation mean IoU"),
        ("accuracy", "training accuracy"),
    ):
        if key in rows[0]:
            axes[1].plot(epochs, [r.get(key) for r in rows], label=name)
    axes[1].set_ylabel("score")
    if selected and selected in rows[0]:
        values = np.array([r.get(selected, np.nan) for r in rows], float)
        if np.isfinite(values).any():
            i = int(np.nanargmin(values) if selected == "val_loss" else np.nanargmax(values))
            ax = axes[0] if selected == "val_loss" else axes[1]
            ax.axvline(epochs[i], color="k", linestyle=":", linewidth=0.8, label=f"best epoch ({selected})")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def read_history(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
