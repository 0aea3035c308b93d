"""The demo bundle's recipe (`tlf-convert demo-bundle`): five training stages on phantom data,
int8 conversion, the thickness response, the domain statistics and the validation gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from convert.commands import print_domain, print_response, record_phantom_domain, validate_and_record
from convert.errors import ConvertError
from convert.inputs import calibration_images, phantom_set_name, phantom_validation_set
from edge.sim.recipes import STAGE4_SEED_OFFSET, STAGE5_SEED_OFFSET

if TYPE_CHECKING:
    from convert.train import TrainOptions

DEMO_CLASS_WEIGHTS = (1.0, 6.0, 1.0)  # above, TLF, below
CUBIC_STAGES = ("stage4", "stage5")  # trained on images reduced to the model grid by the cubic kernel


def cmd_demo_bundle(args) -> int:
    """Five training stages, then int8 conversion and the validation gate.

    Stage 1 learns the task with a class-weighted cross-entropy at a constant rate. Stage 2
    fine-tunes with a rate decaying from 3e-4 to 3e-5 (the band edges settle) and label
    smoothing, which bounds the logits: without it the last layer's outputs span about +-250 and
    int8 steps of 2 lose the thin TLF (measured: int8 mean IoU 0.09 below float). Stage 3 goes on
    from stage 2's last weights at 1e-4 to 1e-5 (it was added when label maps began to be resized
    at pixel centres: it moved the band edges the half pixel the old resize had taught). The class
    weights' shift of the boundaries is removed from the final bias after the last stage. Stage 4
    goes on from stage 3's last weights as stage 3 did, for longer, on scenes from a seed range of
    its own, with images reduced to the model grid by a cubic kernel: the bundle states that
    reduction, because a scanner's screen shows the B-mode enlarged, and an area average of an
    enlargement blurs the band's edges (README, "The demo model"). Stage 5 is stage 4 again from
    its last weights for 12 more epochs, on scenes from the next seed range. After conversion the int8
    model's thickness response is fitted on the phantom scanner's screens (known thickness) and recorded in the
    manifest (convert.response); the validation then measures as the device does, with it.
    """
    from convert.load import model_identity
    from convert.quantize import load_keras_model, quantize_to_bundle
    from convert.response import write_phantom_response
    from convert.validate import GateLimits

    stages = demo_stages(args)
    if args.model:
        best, work = Path(args.model), Path(args.model).parent
    else:
        best, work = train_stages(stages, Path(args.work), args.steps)
    spec = trained_spec(best, work)
    model = load_keras_model(best)
    calib = calibration_images("phantom", 200, spec)
    identity = model_identity(best)
    bundle = quantize_to_bundle(
        model,
        calib,
        spec,
        args.out,
        progress=True,
        extra={
            "training": training_record(stages, args.steps, work),
            "name": "tlf-demo-phantom",
            "float_model": identity,
        },
    )
    bundle, figures = write_phantom_response(bundle, args.response_n)
    print_response(bundle, figures)
    bundle = record_phantom_domain(bundle, 600, 220)
    print_domain(bundle)
    copy_histories(stages, work, bundle.path / "training")
    images, labels, spacings, looks = phantom_validation_set(args.validate_n, spec)
    passed = validate_and_record(
        bundle,
        model,
        images,
        labels,
        spacings,
        bundle.path / "validation",
        phantom_set_name(args.validate_n),
        GateLimits(),
        groups=looks,
        float_model={**identity, "made_from": True},
    )
    print(f"demo bundle written: {bundle.path}")
    return 0 if passed else 3


def demo_stages(args) -> dict[str, TrainOptions]:
    """The five stages' TrainOptions by name, in training order (see cmd_demo_bundle): each as
    long as its --*-epochs, never stopped early, class-weighted, its best epoch by loss."""
    from convert.train import TrainOptions

    settled = (0.1, 1e-4, 1e-5)  # label smoothing, learning rate, the rate it decays to
    plan: dict[str, tuple[int, int, tuple[float, float, float | None]]] = {
        "stage1": (args.epochs, args.seed, (0.0, 1e-3, None)),
        "stage2": (args.finetune_epochs, args.seed + 1, (0.1, 3e-4, 3e-5)),
        "stage3": (args.polish_epochs, args.seed + 2, settled),
        "stage4": (args.cubic_epochs, args.seed + STAGE4_SEED_OFFSET, settled),
        "stage5": (args.more_epochs, args.seed + STAGE5_SEED_OFFSET, settled),
    }
    return {
        name: TrainOptions(
            epochs=epochs,
            seed=seed,
            patience=epochs,
            class_weights=DEMO_CLASS_WEIGHTS,
            label_smoothing=smoothing,
            learning_rate=rate,
            final_learning_rate=final,
            select="val_loss",
        )
        for name, (epochs, seed, (smoothing, rate, final)) in plan.items()
    }


def train_stages(stages: dict[str, TrainOptions], work: Path, steps: int) -> tuple[Path, Path]:
    """Train the stages in turn on `steps` phantom batches per epoch, each into work/STAGE and
    from the last weights of the one before. Returns the last stage's best model and folder."""
    from convert.train import train
    from edge.model.preprocess import PreprocessSpec

    best, previous = None, None
    for name, options in stages.items():
        spec = PreprocessSpec(interpolation="cubic") if name in CUBIC_STAGES else PreprocessSpec()
        best = train(work / name, spec, options, phantom_steps=steps, verbose=2, init_weights=previous)
        previous = work / name / "last.keras"
    assert best is not None and previous is not None  # the stages are never empty
    return best, previous.parent


def trained_spec(best: Path, work: Path):
    """The preprocessing the model `best` was trained with, from the train.json in `work` (the
    last stages' cubic reduction when it records none); ConvertError when the training was not
    weighted (the prior correction the bundle relies on is missing)."""
    from edge.model.preprocess import PreprocessSpec

    info = json.loads((work / "train.json").read_text()) if (work / "train.json").is_file() else {}
    if not info.get("prior_corrected"):
        raise ConvertError(f"{str(best)!r} was not saved by a weighted training (no prior correction recorded)")
    if "preprocess" in info:
        return PreprocessSpec.from_dict(info["preprocess"])  # a reused model keeps what it was trained with
    return PreprocessSpec(interpolation="cubic")


def training_record(stages: dict[str, TrainOptions], steps: int, work: Path) -> dict:
    """The manifest's account of the training: phantom images seen, each stage's options, and
    the last epoch's figures from the history in `work`."""
    from convert.train import read_history

    history = read_history(work / "history.csv") if (work / "history.csv").is_file() else []
    return {
        "phantom_images": sum(o.epochs for o in stages.values()) * steps * stages["stage1"].batch_size,
        **{name: vars(o) for name, o in stages.items()},
        "final": history[-1] if history else {},
    }


def copy_histories(stages: dict[str, TrainOptions], work: Path, folder: Path) -> None:
    """Each stage's history.csv and history.png (beside the last stage's folder `work`) into
    `folder`, as STAGE_history.csv and STAGE_history.png."""
    import shutil

    folder.mkdir(exist_ok=True)
    for stage in stages:
        for name in ("history.csv", "history.png"):
            src = work.parent / stage / name
            if src.is_file():
                shutil.copy(src, folder / f"{stage}_{name}")
