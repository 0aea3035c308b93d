#!/usr/bin/env bash
# The recipes tried for the real-data example, each on fold 0 of the 5 folds run.sh makes (the
# same look-alike folds, seed 0), then one table of them: docs/dltrack_apo_recipes.md.
#
#   examples/dltrack_apo/recipes.sh        # after run.sh step 1 (build/dltrack_apo/data/all); ~20 min a recipe
#
# A recipe whose folder holds fold 0 already is kept (tlf-convert cv resumes per fold).
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3}
WORK=${WORK:-build/dltrack_apo}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OPENCV_LOG_LEVEL=ERROR TF_CPP_MIN_LOG_LEVEL=2
cv() { "$PYTHON" -m convert.cli cv --data "$WORK/data/all" --folds 5 --only 0 --base-filters 16 --depth 4 \
    --batch 4 --seed 0 --learning-rate 2e-3 --final-learning-rate 1e-4 "$@"; }

cv --out "$WORK/recipes/ce_lr2e-3_e60" --size 192 --loss ce --class-weights 1,5 --epochs 60 --patience 25
cv --out "$WORK/recipes/dice_ce_lr2e-3_e60" --size 192 --loss dice_ce --class-weights 1,5 --epochs 60 --patience 25
cv --out "$WORK/recipes/dice_ce_noweights_e60" --size 192 --loss dice_ce --epochs 60 --patience 25
cv --out "$WORK/recipes/ce_256_e36" --size 256 --loss ce --class-weights 1,5 --epochs 36 --patience 36
"$PYTHON" examples/dltrack_apo/summary.py --recipes "$WORK"/recipes/* --out docs/dltrack_apo_recipes.md
