#!/usr/bin/env bash
# The real-data example: 5-fold cross-validation of a two-class (background / aponeurosis)
# paper-size U-Net (base 16, depth 4) on the DL_Track images in ../shared/realdata/dltrack_apo,
# each fold trained with augmentation, quantized to an int8 bundle and validated on its held-out
# images. The README section "A real-data example" explains each step; the figures go into
# docs/dltrack_apo_cv.md, written by the command that measures them.
#
#   examples/dltrack_apo/run.sh            # from the repository root; up to 20 min per fold on 2 cores
#
# Run it again after an interruption: folds already done are kept, an unfinished one resumes
# from its last epoch. Settings can be changed through the environment: PYTHON, SRC, WORK,
# SIZE, EPOCHS, FOLDS, SEED, DOCS (the page to write; DOCS= for none).
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3}
SRC=${SRC:-../shared/realdata/dltrack_apo}
WORK=${WORK:-build/dltrack_apo}
SIZE=${SIZE:-192}
EPOCHS=${EPOCHS:-60}
FOLDS=${FOLDS:-5}
SEED=${SEED:-0}
DOCS=${DOCS-docs/dltrack_apo_cv.md}
CONFIG=examples/dltrack_apo/dataset.toml
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OPENCV_LOG_LEVEL=ERROR TF_CPP_MIN_LOG_LEVEL=2
convert() { "$PYTHON" -m convert.cli "$@"; }

if [ ! -d "$SRC/images" ]; then
    echo "no DL_Track images at $SRC (set SRC=...)" >&2
    exit 1
fi
mkdir -p "$WORK"
exec > >(tee -a "$WORK/run.log") 2>&1  # the run's output is kept beside its results
SECONDS=0
step() { printf '\n== %s (%dm%02ds)\n' "$1" $((SECONDS / 60)) $((SECONDS % 60)); }

step "1. crop every screenshot to its B-mode region"
"$PYTHON" examples/dltrack_apo/prepare.py --src "$SRC" --config "$CONFIG" --out "$WORK/data" --all

step "2. augmented training samples, as the training draws them"
if [ -n "$DOCS" ]; then
    mkdir -p "${DOCS%.md}"
    convert augment-sheet --data "$WORK/data/all" --out "${DOCS%.md}/augment_sheet.png" --size "$SIZE" --images 4 \
        --per-image 5 --seed "$SEED"
fi

# The recipe: Dice + cross-entropy without class weights, augmentation on, the best epoch by
# validation band Dice (docs/dltrack_apo_recipes.md compares the recipes tried on fold 0).
step "3. $FOLDS-fold cross-validation (look-alike images in one fold): train, quantize, validate each fold"
convert cv --data "$WORK/data/all" --out "$WORK/cv" --folds "$FOLDS" --seed "$SEED" --size "$SIZE" \
    --base-filters 16 --depth 4 --batch 4 --loss dice_ce --learning-rate 2e-3 \
    --final-learning-rate 1e-4 --epochs "$EPOCHS" --patience 25 --max-bias 0.5 \
    ${DOCS:+--docs "$DOCS" --title "DL_Track aponeuroses: $FOLDS-fold cross-validation of the paper-size U-Net"} \
    --targets "band_dice>=0.80,thickness_mae<=1.5,int8_dice_drop<=0.01,fold_minutes<=20"

echo "per fold: $WORK/cv/fold_K/ (validation/, fold.png, bundle/); total $((SECONDS / 60))m$((SECONDS % 60))s"
