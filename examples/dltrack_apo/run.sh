#!/usr/bin/env bash
# The real-data example: a two-class (background / aponeurosis) model trained on the DL_Track
# images in ../shared/realdata/dltrack_apo, quantized to an int8 bundle and validated on images
# held out from training. The README section "A real-data example" explains each step.
#
#   examples/dltrack_apo/run.sh            # from the repository root; about 15-20 min on 2 busy cores
#
# Settings can be changed through the environment: PYTHON, SRC, WORK, SIZE, EPOCHS, SEED, and
# CROP=0 to train on the whole screenshots instead of the B-mode region (for comparison).
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3}
SRC=${SRC:-../shared/realdata/dltrack_apo}
WORK=${WORK:-build/dltrack_apo}
SIZE=${SIZE:-192}
EPOCHS=${EPOCHS:-20}
SEED=${SEED:-0}
CROP=${CROP:-1}
CONFIG=examples/dltrack_apo/dataset.toml
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OPENCV_LOG_LEVEL=ERROR TF_CPP_MIN_LOG_LEVEL=2
convert() { "$PYTHON" -m convert.cli "$@"; }

if [ ! -d "$SRC/images" ]; then
    echo "no DL_Track images at $SRC (set SRC=...)" >&2
    exit 1
fi
rm -rf "$WORK"
mkdir -p "$WORK"
exec > >(tee "$WORK/run.log") 2>&1  # the run's output is kept beside its results
SECONDS=0
step() { printf '\n== %s (%dm%02ds)\n' "$1" $((SECONDS / 60)) $((SECONDS % 60)); }

step "1. crop to the B-mode region and split (held-out groups of look-alike images, seed $SEED)"
"$PYTHON" examples/dltrack_apo/prepare.py --src "$SRC" --config "$CONFIG" --out "$WORK/data" --holdout 0.2 --seed "$SEED" \
    $([ "$CROP" = 0 ] && echo --no-crop)

step "2. train a ${SIZE}x${SIZE} two-class U-Net (base 8, depth 4) for $EPOCHS epochs on the training part"
convert train --data "$WORK/data/train" --out "$WORK/model" --size "$SIZE" --base-filters 8 --depth 4 \
    --batch 4 --learning-rate 2e-3 --epochs "$EPOCHS" --patience "$EPOCHS" --class-weights 1,5 --seed "$SEED"

step "3. quantize to int8, calibrated on the training images"
convert quantize "$WORK/model/model.keras" --calib "$WORK/data/train/images" --dataset-config "$CONFIG" \
    --out "$WORK/bundle"

# The thickness-bias limit is 0.5 native px: about 5% of the median band (11 px), the share the
# default 0.05 mm is of a 1 mm TLF.
step "4. validate float and int8 on the held-out images (thickness in native pixels)"
rc=0
convert validate "$WORK/bundle" --float "$WORK/model/model.keras" --data "$WORK/data/heldout" --native-px \
    --max-bias 0.5 || rc=$?

step "5. figures"
"$PYTHON" examples/dltrack_apo/summary.py "$WORK/bundle"
echo "report: $WORK/bundle/validation/validation.md; total $((SECONDS / 60))m$((SECONDS % 60))s"
exit $rc
