#!/usr/bin/env bash
# Fetches four small public tabular sets that scikit-learn ships (Debian package python3-sklearn, downloaded with
# apt-get, never installed) into one folder for the tabular benchmark's held-out check of the trainer's defaults:
#   diabetes.txt       442 rows, 10 numeric features, regression (Efron et al. 2004)
#   breast_cancer.csv  569 rows, 30 numeric features, binary (Wisconsin diagnostic)
#   wine.csv           178 rows, 13 numeric features, 3 classes
#   iris.csv           150 rows, 4 numeric features, 3 classes
# usage: tools/sklearn-sets.sh [folder]   (default ~/.cache/memoryformer/sklearn-sets), then
#   build/build.sh bench tabular --data FOLDER --sets diabetes,breast_cancer,wine,iris --trainer-defaults
set -euo pipefail
out="${1:-$HOME/.cache/memoryformer/sklearn-sets}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq python3-sklearn 2>/dev/null && dpkg -x python3-sklearn_*.deb x)
data="$(find "$work/x" -type d -path '*sklearn/datasets/data' | head -1)"
[ -n "$data" ] || { echo "python3-sklearn holds no sklearn/datasets/data folder" >&2; exit 1; }
# diabetes: the raw features (space-separated, no header) and the target in a file of its own; joined with a header.
{ echo "target age sex bmi bp s1 s2 s3 s4 s5 s6"; paste -d' ' <(zcat "$data/diabetes_target.csv.gz" | awk '{printf "%g\n", $1}') <(zcat "$data/diabetes_data_raw.csv.gz"); } > "$out/diabetes.txt.tmp"
mv "$out/diabetes.txt.tmp" "$out/diabetes.txt"
# The three CSVs start with a line of counts and class names, which the loader skips as a header; the label is the last column.
cp "$data/breast_cancer.csv" "$out/breast_cancer.csv"
cp "$data/wine_data.csv" "$out/wine.csv"
cp "$data/iris.csv" "$out/iris.csv"
wc -l "$out"/diabetes.txt "$out"/breast_cancer.csv "$out"/wine.csv "$out"/iris.csv
