#!/usr/bin/env bash
# The one entry point for building, testing, running the demo and the benchmarks, and packing.
#   build/build.sh build          restore and build everything (Release)
#   build/build.sh test           build and run the test suite; ends with "N passed, N failed"
#   build/build.sh demo [args]    train a MemoryFormer language model on Moby Dick and generate text (samples/TextGeneration)
#   build/build.sh bench [args]   run the benchmark program (test/Microsoft.ML.MemoryFormer.Benchmarks)
#   build/build.sh pack           create the NuGet package in artifacts/
# Needs only the .NET SDK (see global.json); the demo also needs npm, which it installs with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
CONFIG="${CONFIGURATION:-Release}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

ensure_npm() {
  command -v npm >/dev/null 2>&1 && return 0
  echo "npm is needed to fetch the demo corpus; installing it with apt-get" >&2
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq npm >/dev/null
}

build() { dotnet build "$ROOT/Microsoft.ML.MemoryFormer.sln" -c "$CONFIG" -nologo -clp:ErrorsOnly "$@"; }

run_tests() {
  build
  local results="$ROOT/artifacts/test-results"
  rm -rf "$results"; mkdir -p "$results"
  local rc=0
  dotnet test "$ROOT/test/Microsoft.ML.MemoryFormer.Tests/Microsoft.ML.MemoryFormer.Tests.csproj" -c "$CONFIG" --no-build \
    --logger "trx;LogFileName=tests.trx" --logger "console;verbosity=normal" --results-directory "$results" "$@" || rc=$?
  local trx="$results/tests.trx"
  if [ ! -f "$trx" ]; then echo "0 passed, 1 failed"; return 1; fi
  local counters passed failed skipped
  counters="$(grep -o '<Counters [^>]*>' "$trx")"
  passed="$(sed -E 's/.* passed="([0-9]+)".*/\1/' <<<"$counters")"
  failed="$(sed -E 's/.* failed="([0-9]+)".*/\1/' <<<"$counters")"
  skipped="$(grep -c 'outcome="NotExecuted"' "$trx" || true)"
  echo "${passed} passed, ${failed} failed, ${skipped} skipped"
  return "$rc"
}

case "${1:-build}" in
  build) shift || true; build "$@" ;;
  test) shift; run_tests "$@" ;;
  demo) shift; ensure_npm; dotnet run --project "$ROOT/samples/TextGeneration/TextGeneration.csproj" -c "$CONFIG" -- "$@" ;;
  bench) shift; dotnet run --project "$ROOT/test/Microsoft.ML.MemoryFormer.Benchmarks/Microsoft.ML.MemoryFormer.Benchmarks.csproj" -c "$CONFIG" -- "$@" ;;
  pack) shift; dotnet pack "$ROOT/src/Microsoft.ML.MemoryFormer/Microsoft.ML.MemoryFormer.csproj" -c "$CONFIG" -o "$ROOT/artifacts/packages" "$@" ;;
  *) echo "usage: build/build.sh {build|test|demo|bench|pack} [args]" >&2; exit 2 ;;
esac
