#!/usr/bin/env bash
# The consumer check (run by build/build.sh test): pack the library, then build and run test/ConsumerCheck — a user's
# console app that references the .nupkg from a local folder feed — against each ML.NET version given (default
# 6.0.0 5.0.1): Fit → Save in one process, Load → Predict in a second one; and, once, what the .nupkg promises
# (no backend forced on the app, ML.NET range, readme, licence, repository, native fix, symbols). Prints one
# "consumer check ..." line per check and, last, "N passed, N failed". Needs the library built (Release) already.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
CONFIG="${CONFIGURATION:-Release}"
VERSIONS=("$@"); [ ${#VERSIONS[@]} -eq 0 ] && VERSIONS=(6.0.0 5.0.1)
# A version of its own for every run: no stale copy of the package, from this run or a concurrent one, is ever used.
PACKAGE_VERSION="0.0.0-consumercheck.$(date +%s).$$"
PACKAGE_CACHE="${NUGET_PACKAGES:-$HOME/.nuget/packages}/microsoft.ml.memoryformer/$PACKAGE_VERSION"
FEED="$ROOT/artifacts/consumer-feed"
APP="$ROOT/test/ConsumerCheck"

rm -rf "$FEED"
if ! dotnet pack "$ROOT/src/Microsoft.ML.MemoryFormer/Microsoft.ML.MemoryFormer.csproj" -c "$CONFIG" --no-build -nologo \
    -clp:ErrorsOnly -o "$FEED" -p:Version="$PACKAGE_VERSION" >/dev/null; then
  echo "consumer check: pack failed"; echo "0 passed, ${#VERSIONS[@]} failed"; exit 1
fi
# Everything else comes from the usual NuGet cache; this run's copy of our package leaves it at the end.
rm -rf "$ROOT/artifacts/consumer-check"
trap 'rm -rf "$PACKAGE_CACHE"' EXIT

passed=0 failed=0
for v in "${VERSIONS[@]}"; do
  work="$(mktemp -d)"
  dll="$ROOT/artifacts/consumer-check/mlnet-$v/bin/$CONFIG/net10.0/ConsumerCheck.dll"
  if dotnet build "$APP/ConsumerCheck.csproj" -c "$CONFIG" -nologo -clp:ErrorsOnly -p:MLNetVersion="$v" \
       -p:MemoryFormerPackageVersion="$PACKAGE_VERSION" >"$work/build.log" 2>&1 \
     && dotnet "$dll" fit "$work/model" >"$work/fit.log" 2>&1 \
     && dotnet "$dll" predict "$work/model" >"$work/predict.log" 2>&1; then
    echo "consumer check, ML.NET $v: passed ($(tail -n1 "$work/predict.log"))"
    passed=$((passed + 1))
  else
    echo "consumer check, ML.NET $v: FAILED"
    tail -n 30 "$work"/*.log
    failed=$((failed + 1))
  fi
  # The package's metadata, once, with the first app that built.
  if [ -z "${package_checked:-}" ] && [ -f "$dll" ]; then
    package_checked=1
    if dotnet "$dll" package "$FEED/Microsoft.ML.MemoryFormer.$PACKAGE_VERSION.nupkg" >"$work/package.log" 2>&1; then
      echo "consumer check, package: passed ($(tail -n1 "$work/package.log"))"
      passed=$((passed + 1))
    else
      echo "consumer check, package: FAILED"; cat "$work/package.log"
      failed=$((failed + 1))
    fi
  fi
  rm -rf "$work"
done
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
