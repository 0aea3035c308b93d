"""The `tlf-convert` commands that train, cross-validate, quantize, validate and annotate a
bundle, write phantom data sets and the peak model. Each takes the parsed arguments and returns
the exit code; the ones that need TensorFlow import it inside (convert.cli.NEEDS_TENSORFLOW)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from convert.errors import ConvertError
from convert.inputs import (
    calibration_images,
    checked_float_model,
    data_spacings,
    dataset_config,
    float_identity,
    labelled_set,
    model_classes,
    phantom_domain_images,
    phantom_set_name,
    phantom_validation_set,
    read_bundle,
    read_float_model,
    validation_split,
)
from convert.options import checked_preset, declared_spec, model_grid, parse_grid, parse_pair, training_options


def cmd_train(args) -> int:
    from convert.train import train
    from edge.model.preprocess import PreprocessSpec

    spec = PreprocessSpec(height=args.size, width=args.size, interpolation=args.interpolation)
    train_data = val_data = None
    classes = 3
    if args.data:
        x, y, config, _, _ = labelled_set(args.data, spec, args.dataset_config)
        classes = model_classes(config, y)
        val = validation_split(x, args.seed)
        val_data = (x[val], y[val])
        train_data = (x[~val], y[~val])
    elif args.dataset_config:
        raise ConvertError("--dataset-config needs --data")
    opts = training_options(args, classes, bool(args.data))
    best = train(
        Path(args.out),
        spec,
        opts,
        train_data,
        val_data,
        phantom_steps=args.steps,
        resume=args.resume,
        verbose=1 if sys.stdout.isatty() else 2,
    )  # progress bars only on a terminal, else a line per epoch
    print(f"trained model: {best}")
    return 0


def cmd_cv(args) -> int:
    from convert.cv import command_line, cross_validate, docs_page, parse_targets
    from convert.validate import GateLimits
    from edge.model.preprocess import PreprocessSpec

    if args.folds < 2:
        raise ConvertError(f"--folds must be at least 2, not {args.folds}")
    if args.revalidate and (args.requantize or args.transpose_as_depth_to_space):
        raise ConvertError(
            "--revalidate scores the bundles as they are: give --requantize to export the folds' models again"
        )
    targets = parse_targets(args.targets)
    if args.spacing_mm and args.model_px:
        raise ConvertError("give --spacing-mm or --model-px, not both")
    spacing = "model" if args.model_px else "native"
    if args.spacing_mm:
        spacing = tuple(float(v) for v in args.spacing_mm.split(","))
    only = None
    if args.only:
        try:
            only = [int(v) for v in args.only.split(",")]
        except ValueError:
            raise ConvertError(f"--only {args.only!r} is not comma-separated fold numbers") from None
    config = dataset_config(args.data, args.dataset_config)
    if config.legacy:
        raise ConvertError(
            f"{args.data!r} has no dataset.json/.toml: give one (or --dataset-config) naming the classes"
        )
    spec = PreprocessSpec(height=args.size, width=args.size, interpolation=args.interpolation)
    opts = training_options(args, len(config.classes), True)
    summary = cross_validate(
        args.data,
        args.out,
        spec,
        opts,
        folds=args.folds,
        seed=args.seed,
        similar=args.similar,
        dataset_config=args.dataset_config,
        spacing=spacing,
        limits=GateLimits(max_miou_drop=args.max_miou_drop, max_thickness_bias=args.max_bias),
        only=only,
        calib_n=args.calib_n,
        verbose=1 if sys.stdout.isatty() else 2,
        requantize=args.requantize,
        transpose_as_depth_to_space=args.transpose_as_depth_to_space,
        revalidate=args.revalidate,
    )
    print((Path(args.out) / "summary.md").read_text())
    if args.docs:
        page = docs_page(summary, Path(args.out), Path(args.docs), args.title, command_line(args.argv), targets)
        print(f"docs page written: {page}")
    return 0


def cmd_quantize(args) -> int:
    from convert.data import read_dataset_config
    from convert.domain import record_domain
    from convert.quantize import quantize_to_bundle
    from convert.validate import GateLimits

    size = parse_grid(args.size)
    model = read_float_model(args)
    _, h, w, c = model.input_shape
    if not args.weights:
        h, w = model_grid(model, size, args.size)
    spec = declared_spec(args, Path(args.model or args.weights), h, w, c)
    calib_source = args.calib or "phantom"
    calib = calibration_images(calib_source, args.calib_n, spec)
    if args.calib is None:
        print(
            f"tlf-convert: note: calibrating on {len(calib)} phantom scenes (no --calib given): the "
            "int8 ranges and the out-of-domain statistics then describe phantom images; for a model of real "
            "scans give --calib a folder of images like the cart's",
            file=sys.stderr,
        )
    data = labelled_set(args.data, spec, args.dataset_config) if args.data else None
    config = data[2] if data else read_dataset_config(Path(args.dataset_config)) if args.dataset_config else None
    classes = list(config.classes) if config is not None and not config.legacy else None
    if args.class_names:
        classes = [n.strip() for n in args.class_names.split(",")]
    identity = float_identity(args)
    bundle = quantize_to_bundle(
        model,
        calib,
        spec,
        args.out,
        classes=classes,
        reference=data[0] if data else None,
        progress=sys.stdout.isatty(),
        check_prediction=not args.allow_one_class,
        check_band=not args.allow_one_class,
        allow_partitions=args.allow_partitions,
        transpose_as_depth_to_space=args.transpose_as_depth_to_space,
        check_preprocessing=not args.trust_preprocessing,
        extra={"float_model": identity},
    )
    bundle = record_domain(
        bundle,
        calib,
        data[0] if data else calib,
        f"calibration images ({calib_source})",
        f"{args.data} (the gate's labelled set)"
        if data
        else f"calibration images ({calib_source}; no held-out set given)",
    )
    stale = bundle.path / "validation"
    if (stale / "validation.json").is_file() or (stale / "validation.md").is_file():  # of the model replaced
        shutil.rmtree(stale)
        print(
            f"tlf-convert: note: removed {stale}: it held the validation of the model this bundle replaces"
            + ("; this run writes a new one" if data else "; run tlf-convert validate for the new one"),
            file=sys.stderr,
        )
    if args.layer_report:
        write_layer_report(model, calib, spec, Path(args.layer_report))
    print(
        f"bundle written: {bundle.path} (sha256 {bundle.sha256[:12]}, {bundle.model_path.stat().st_size} bytes; "
        f"{bundle.output_kind} head, {len(bundle.classes)} classes {bundle.classes}; input {spec.describe()})"
    )
    if data is None:
        return 0
    spacings, unit = data_spacings(args, data[3], spec, data[2])
    limits = GateLimits(max_miou_drop=args.max_miou_drop, max_thickness_bias=args.max_bias)
    passed = validate_and_record(
        bundle,
        model,
        data[0],
        data[1],
        spacings,
        bundle.path / "validation",
        str(args.data),
        limits,
        unit=unit,
        native_labels=data[4],
        float_model={**identity, "made_from": True},
    )
    return 0 if passed else 3


def write_layer_report(model, calib, spec, path: Path) -> None:
    import csv

    from convert.quantize import layer_report
    from convert.unet import split_skip_connections

    rows = layer_report(split_skip_connections(model), calib, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["tensor", "snr_db", "levels_used"])
        writer.writeheader()
        writer.writerows(rows)
    print("worst int8 layers (SNR dB, levels used):")
    for r in rows[:5]:
        print(f"  {r['snr_db']:7.2f}  {r['levels_used']:4d}  {r['tensor']}")


def cmd_validate(args) -> int:
    from convert.validate import GateLimits

    bundle = read_bundle(args.bundle)
    spec = bundle.spec
    identity = checked_float_model(args, bundle)
    model = read_float_model(args, spec)
    unit = None
    if args.data == "phantom":
        if args.dataset_config or args.native_px:
            raise ConvertError("--dataset-config and --native-px need a --data folder")
        images, labels, spacings, groups = phantom_validation_set(args.n, spec)
        native = None
        set_name = phantom_set_name(args.n)
    else:
        images, labels, config, shapes, native = labelled_set(args.data, spec, args.dataset_config)
        if not config.legacy and len(config.classes) != len(bundle.manifest["classes"]):
            raise ConvertError(
                f"the data set has {len(config.classes)} classes {list(config.classes)} but the bundle "
                f"has {len(bundle.manifest['classes'])} {bundle.manifest['classes']}"
            )
        spacings, unit = data_spacings(args, shapes, spec, config)
        set_name = str(args.data)
        groups = None
        native = native if len(bundle.manifest["classes"]) == 2 else None
    limits = GateLimits(max_miou_drop=args.max_miou_drop, max_thickness_bias=args.max_bias)
    out = Path(args.out) if args.out else bundle.path / "validation"
    return (
        0
        if validate_and_record(
            bundle,
            model,
            images,
            labels,
            spacings,
            out,
            set_name,
            limits,
            groups,
            unit=unit,
            native_labels=native,
            float_model=identity,
        )
        else 3
    )


def validate_and_record(
    bundle,
    model,
    images,
    labels,
    spacings,
    out_dir,
    set_name,
    limits,
    groups=None,
    unit=None,
    native_labels=None,
    float_model: dict | None = None,
) -> bool:
    """Run the float-versus-int8 gate, write its reports and record the result in the manifest
    (with the float model's identity, `float_model`, when given)."""
    from convert.report import write_report
    from convert.validate import compare, gate
    from edge.model.bundle import update_manifest

    report = compare(bundle, model, images, labels, spacings, groups=groups, unit=unit, native_labels=native_labels)
    failures = gate(report, limits)
    summary = write_report(report, images, labels, Path(out_dir), failures)
    against = {"float_model": float_model} if float_model is not None else {}
    update_manifest(bundle, validation={"set": set_name, "limits": vars(limits), **against, **summary})
    f, q = summary["float"], summary["int8"]
    th, unit = summary["thickness"], summary["unit"]

    def figure(value) -> str:  # None: no image measured by both sides
        return "not measured (no image with a band measured by both)" if value is None else f"{value} {unit}"

    print(
        f"float mean IoU {f['mean_iou']:.4f}, int8 {q['mean_iou']:.4f}; TLF Dice int8 {q['dice'][bundle.tlf_class]:.4f}; "
        f"int8-float thickness bias {figure(th['int8_vs_float'].get('bias'))}, "
        f"int8-truth MAE {figure(th['int8_vs_truth'].get('mae'))}"
    )
    print(
        ("gate PASSED" if not failures else "gate FAILED: " + "; ".join(failures))
        + f" (report: {out_dir}/validation.md)"
    )
    return not failures


def cmd_domain(args) -> int:
    from convert.domain import record_domain

    bundle = read_bundle(args.bundle)
    spec = bundle.spec
    if args.n < 4 or args.heldout_n < 2:
        raise ConvertError("--n must be at least 4 and --heldout-n at least 2")
    if args.train == "phantom":
        train, train_name = phantom_domain_images(args.n, spec)
    else:
        train, train_name = calibration_images(args.train, args.n, spec), str(args.train)
    if args.heldout == "phantom":
        heldout = phantom_validation_set(args.heldout_n, spec)[0]
        heldout_name = phantom_set_name(args.heldout_n)
    else:
        heldout, heldout_name = calibration_images(args.heldout, args.n, spec), str(args.heldout)
    bundle = record_domain(bundle, train, heldout, train_name, heldout_name)
    print_domain(bundle)
    return 0


def record_phantom_domain(bundle, n: int, heldout_n: int):
    """A phantom-trained bundle's domain statistics: `n` fresh training-like scenes, margins on
    the held-out validation scenes (as `tlf-convert domain BUNDLE --train phantom --heldout phantom`)."""
    from convert.domain import record_domain

    train, name = phantom_domain_images(n, bundle.spec)
    return record_domain(
        bundle, train, phantom_validation_set(heldout_n, bundle.spec)[0], name, phantom_set_name(heldout_n)
    )


def print_domain(bundle) -> None:
    d = bundle.domain
    limits = "none" if d.margin_limits is None else ", ".join(f"{v:.4g}" for v in d.margin_limits)
    print(
        f"domain statistics of {len(d.reference)} training images ({d.fitted_on}) recorded in {bundle.path}: "
        f"limits {d.distance_limit:.2f} from the nearest, {d.spread_limit:.2f} from them as a whole; margin limits "
        f"(mean, 10th percentile, uncertain share) {limits} ({d.margins_on or 'no held-out images'})"
    )


def cmd_thickness_response(args) -> int:
    from convert.response import write_phantom_response
    from edge.model.bundle import load_bundle

    bundle, figures = write_phantom_response(
        load_bundle(args.bundle), args.n, images=args.images, layering=not args.no_layering
    )
    print_response(bundle, figures)
    print("validate the bundle again (tlf-convert validate) for figures measured with it")
    return 0


def print_response(bundle, figures: dict) -> None:
    cal = bundle.thickness_response
    print(
        f"thickness response: measured rows = {cal.a:+.3f} {cal.b:+.4f}*true {cal.c:+.3f}*s {cal.d:+.4f}*true*s "
        f"{cal.e:+.3f}*L (s {cal.s_range[0]:.4f}-{cal.s_range[1]:.4f} mm per row, L the band's layering contrast; "
        f"{cal.fitted_on})"
    )
    print(
        f"on those images: bias {figures['bias_mm_before']:+.4f} -> {figures['bias_mm_after']:+.4f} mm, "
        f"MAE {figures['mae_mm_before']:.4f} -> {figures['mae_mm_after']:.4f} mm"
    )


def cmd_phantom(args) -> int:
    import itertools

    from convert.data import phantom_dataset_config, write_dataset
    from edge.sim import phantom

    shape = parse_pair(args.size, "--size", int)
    field = parse_pair(args.field_mm, "--field-mm", float)
    machine = checked_preset(args.preset) if args.preset else None
    if args.n < 1:
        raise ConvertError(f"--n must be at least 1, not {args.n}")
    config = phantom_dataset_config(args.mask, args.base, spacing_mm=(field[0] / shape[0], field[1] / shape[1]))
    scans = (
        phantom.scan(args.seed + i, shape, machine, field, wide=args.wide, artefacts=args.artefacts)
        for i in range(args.n)
    )
    a, b = itertools.tee(scans)  # consumed in lockstep: one scan in memory at a time
    images = (s.image for s in a)
    labels = ((s.labels == phantom.TLF).astype(np.uint8) if args.mask == "binary" else s.labels for s in b)
    path = write_dataset(
        Path(args.out),
        images,
        labels,
        config,
        stems=[f"{args.seed + i:06d}" for i in range(args.n)],
        image_format=args.image_format,
    )
    print(f"{args.n} phantom images with {args.mask} masks written to {args.out} (config {path.name})")
    return 0


def cmd_peak_model(args) -> int:
    from convert.peak import write_peak_model
    from edge.model.macs import count_macs

    out = write_peak_model(args.out, args.seed)
    macs = count_macs(out)
    print(f"peak model written to {out} ({out.stat().st_size // 1024} KB, {macs.gmac:.3f} GMAC per invoke)")
    return 0


def cmd_rewrite(args) -> int:
    """`tlf-convert rewrite BUNDLE`: the bundle's int8 transposed convolutions of kernel = stride as
    1x1 convolutions and depth-to-space (convert.blockwise), in place, when the int8 outputs stay
    the same on this machine. The manifest's ops, delegate partitions, export entry, conversion
    notes and model sha256 follow; its other records (validation, domain statistics, thickness
    response) hold as they are, the outputs being the same.

    The new model and manifest are written into BUNDLE/.rewrite.part, then renamed over the old
    ones, the model first: a run stopped between the two renames left the new manifest there, and
    the next run puts it in place before it reads the bundle (_finish_rewrite). Until then
    tlf-edge refuses the bundle (its model does not match the manifest's sha256).
    --images (phantom scenes by default) are compared besides the seeded random inputs."""
    import hashlib
    import os
    import shutil

    from convert.blockwise import faster_int8_graph
    from convert.quantize import graph_report, invoke_ms
    from edge.model.bundle import MANIFEST_FILE, load_bundle, write_manifest

    work = Path(args.bundle) / REWRITE_WORK
    if args.n < 1:
        raise ConvertError(f"--n must be at least 1, not {args.n}")
    _finish_rewrite(Path(args.bundle))
    bundle = read_bundle(args.bundle)
    before = bundle.model_path.read_bytes()
    rewrite = faster_int8_graph(before, calibration_images(args.images, args.n, bundle.spec), bundle.spec)
    if not rewrite.rewritten:
        print(f"{bundle.path}: unchanged ({rewrite.note or 'no TRANSPOSE_CONV of kernel = stride in its graph'})")
        return 0
    graph = graph_report(rewrite.model_bytes)
    m = bundle.manifest
    manifest = {k: v for k, v in m.items() if k != "manifest_sha256"}  # each entry where it was
    manifest.update(
        sha256=hashlib.sha256(rewrite.model_bytes).hexdigest(),
        ops=graph["ops"],
        delegate_partitions=graph["delegate_partitions"],
        export={
            **m.get("export", {"transpose_as_depth_to_space": False}),
            "transpose_conv_blockwise": rewrite.rewritten,
        },
        conversion_notes=[*m.get("conversion_notes", []), rewrite.note],
    )
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    (work / bundle.model_path.name).write_bytes(rewrite.model_bytes)
    write_manifest(work, manifest)
    os.replace(work / bundle.model_path.name, bundle.model_path)
    os.replace(work / MANIFEST_FILE, bundle.path / MANIFEST_FILE)
    work.rmdir()
    load_bundle(bundle.path)
    print(
        f"{bundle.path}: {rewrite.note}; invoke here at 1 thread {invoke_ms(before):.2f} ms before, "
        f"{invoke_ms(rewrite.model_bytes):.2f} ms now; model sha256 {manifest['sha256'][:12]}..."
    )
    return 0


REWRITE_WORK = ".rewrite.part"  # where tlf-convert rewrite writes a bundle's new model and manifest first


def _finish_rewrite(folder: Path) -> None:
    """A rewrite stopped between its two renames left the new manifest in REWRITE_WORK and the new
    model in place: that manifest goes in place when the model file in place is the one it names
    (its sha256), else it is dropped with whatever else a stopped rewrite left there."""
    import json
    import os
    import shutil

    from edge.model.bundle import MANIFEST_FILE, file_sha256

    work = folder / REWRITE_WORK
    staged = work / MANIFEST_FILE
    if staged.is_file():
        try:
            manifest = json.loads(staged.read_text())
            model = folder / str(manifest.get("model_file", ""))
            if model.is_file() and file_sha256(model) == manifest.get("sha256"):
                os.replace(staged, folder / MANIFEST_FILE)
        except (ValueError, OSError):
            pass
    shutil.rmtree(work, ignore_errors=True)
