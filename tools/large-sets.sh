#!/usr/bin/env bash
# Fetches two public tables of 20,000 rows (16,000 training rows after the benchmark's 80/20 split, so the tabular
# trainer's large-table defaults apply) into one folder, for a held-out check of those defaults on sets none was tuned on:
#   flights.csv  20,000 US domestic flights of January-March 2001 (npm package vega-datasets, flights-20k.json),
#                binary: a delay over 15 minutes, from the hour, weekday, day and month of departure, the
#                distance and the origin and destination airports (59 each)
#   randhie.csv  20,190 person-years of the RAND Health Insurance Experiment (Debian package python3-statsmodels,
#                downloaded with apt-get, never installed), regression: doctor visits a year from 9 numeric columns
# usage: tools/large-sets.sh [folder]   (default ~/.cache/memoryformer/large-sets), then
#   build/build.sh bench tabular --data FOLDER --sets flights,randhie --trainer-defaults
set -euo pipefail
out="${1:-$HOME/.cache/memoryformer/large-sets}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack -q vega-datasets@2.8.0 >/dev/null && tar xzf vega-datasets-2.8.0.tgz package/data/flights-20k.json)
node -e '
const rows = require(process.argv[1]);
const lines = ["delayed,hour,weekday,day,month,distance,origin,destination"];
for (const r of rows) {
  const [d, t] = r.date.split(" "), [y, m, day] = d.split("/").map(Number), [hh, mm] = t.split(":").map(Number);
  const weekday = new Date(Date.UTC(y, m - 1, day)).getUTCDay();
  lines.push([r.delay > 15, (hh + mm / 60).toFixed(3), weekday, day, m, r.distance, r.origin, r.destination].join(","));
}
require("fs").writeFileSync(process.argv[2], lines.join("\n") + "\n");
' "$work/package/data/flights-20k.json" "$out/flights.csv.tmp"
mv "$out/flights.csv.tmp" "$out/flights.csv"
(cd "$work" && apt-get download -qq python3-statsmodels 2>/dev/null && dpkg -x python3-statsmodels_*.deb x)
data="$(find "$work/x" -name randhie.csv | head -1)"
[ -n "$data" ] || { echo "python3-statsmodels holds no randhie.csv" >&2; exit 1; }
cp "$data" "$out/randhie.csv"
wc -l "$out"/flights.csv "$out"/randhie.csv
