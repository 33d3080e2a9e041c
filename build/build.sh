#!/usr/bin/env bash
# The one entry point for building, testing, running the demo and the benchmarks, and packing.
#   build/build.sh build          restore and build everything (Release)
#   build/build.sh test           build and run the test suite (ML.NET 5.0.1), the ML.NET integration and persistence
#                                 tests again against ML.NET 6.0.0, and the consumer check (build/consumer-check.sh);
#                                 ends with "N passed, N failed, N skipped" summed over all of them
#   build/build.sh demo [args]    train a MemoryFormer language model on Moby Dick and generate text (samples/TextGeneration)
#   build/build.sh bench [args]   run the benchmark program (test/Microsoft.ML.MemoryFormer.Benchmarks)
#                                 e.g. bench lm --equal-time --steps 1000: byte-level MF vs dense at equal wall-clock
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

# The ML.NET integration and persistence tests, run a second time against the newest supported ML.NET (the main run
# uses the lowest, 5.0.1; see Directory.Packages.props).
MLNET_LATEST=6.0.0
MLNET_LATEST_FILTER="FullyQualifiedName~Tests.MLNet.|FullyQualifiedName~Tests.Persistence.|FullyQualifiedName~MemoryFormerLanguageModelTests|FullyQualifiedName~TextCatalogClassifierTests|FullyQualifiedName~TabularTrainerTests|FullyQualifiedName~MemoryFormerChatClientTests"

# "passed failed skipped" of one trx file, or "0 1 0" when the run left none.
trx_counts() {
  local trx="$1" counters
  if [ ! -f "$trx" ]; then echo "0 1 0"; return; fi
  counters="$(grep -o '<Counters [^>]*>' "$trx")"
  echo "$(sed -E 's/.* passed="([0-9]+)".*/\1/' <<<"$counters") $(sed -E 's/.* failed="([0-9]+)".*/\1/' <<<"$counters") $(grep -c 'outcome="NotExecuted"' "$trx" || true)"
}

run_tests() {
  build
  local results="$ROOT/artifacts/test-results"
  rm -rf "$results"; mkdir -p "$results"
  local rc=0
  dotnet test "$ROOT/test/Microsoft.ML.MemoryFormer.Tests/Microsoft.ML.MemoryFormer.Tests.csproj" -c "$CONFIG" --no-build \
    --logger "trx;LogFileName=tests.trx" --logger "console;verbosity=normal" --results-directory "$results" "$@" || rc=$?

  echo "== ML.NET ${MLNET_LATEST}: integration and persistence tests =="
  if dotnet build "$ROOT/test/Microsoft.ML.MemoryFormer.Tests/Microsoft.ML.MemoryFormer.Tests.csproj" -c "$CONFIG" -nologo \
      -clp:ErrorsOnly -p:MLNetVersion="$MLNET_LATEST"; then
    dotnet test "$ROOT/artifacts/mlnet-$MLNET_LATEST/bin/Microsoft.ML.MemoryFormer.Tests/$CONFIG/net10.0/Microsoft.ML.MemoryFormer.Tests.dll" \
      --filter "$MLNET_LATEST_FILTER" --logger "trx;LogFileName=tests-mlnet-$MLNET_LATEST.trx" --results-directory "$results" || rc=1
  else
    rc=1
  fi

  echo "== consumer check =="
  local consumer
  bash "$ROOT/build/consumer-check.sh" >"$results/consumer-check.log" 2>&1 || rc=1
  cat "$results/consumer-check.log"
  consumer="$(tail -n1 "$results/consumer-check.log")"

  local passed=0 failed=0 skipped=0 p f s
  for trx in "$results/tests.trx" "$results/tests-mlnet-$MLNET_LATEST.trx"; do
    read -r p f s <<<"$(trx_counts "$trx")"
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  done
  read -r p f <<<"$(sed -E 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/' <<<"$consumer")"
  [[ "$p" =~ ^[0-9]+$ && "$f" =~ ^[0-9]+$ ]] || { p=0; f=1; }
  passed=$((passed + p)); failed=$((failed + f))
  [ "$failed" -gt 0 ] && rc=1
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
