#!/bin/sh
# Colour-space comparison: train + test the same U-Net in every target space (experiments/colorspace_*.yaml),
# then one report of the newest run of each (last/best/test metrics table + curves) via `colorlab compare`.
# Extra arguments go to every run, e.g. the 4-minute protocol of the results table:
#   sh experiments/colorspace_compare.sh --config experiments/results/photos_4min.yaml
# Run from the repository root; PYTHON defaults to .venv/bin/python, the photos to $COLORLAB_DATA, runs to runs/.
set -e
PYTHON=${PYTHON:-.venv/bin/python}
SPACES="lab rgb rgb_as_is yuv ycbcr hsv"
for space in $SPACES; do
  "$PYTHON" -m colorlab experiment --config "experiments/colorspace_$space.yaml" "$@"
done
newest() { ls -d "runs/colorspace_$1"/*/ | sort | tail -n 1; }
"$PYTHON" -m colorlab compare $(for space in $SPACES; do newest "$space"; done) --names $SPACES \
  --out runs/compare/colorspaces
