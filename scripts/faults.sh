#!/usr/bin/env bash
# The fault campaign, one command: the node killed at random moments while clients work it
# (`caravan bench faults`), every parser of outside input fuzzed (the property tests that print
# `fuzzed …: N inputs`), the HTTP API fuzzed from its OpenAPI document by schemathesis
# (`caravan bench api`), and a soak (`caravan bench soak`). Ends with one table of figures.
#
#   scripts/faults.sh --quick                 CI's size: 10 kills, 256 inputs per fuzz
#                                             property (a debug build), 10 API requests per
#                                             operation and phase, a 2-minute soak
#   scripts/faults.sh                         the full size: 200 kills, 100,000 inputs per
#                                             property, 100 per operation, a 10-minute soak
#   scripts/faults.sh --cases N               inputs per fuzz property
#   scripts/faults.sh --postgres URL [--restart-postgres CMD]
#                                             also the kill loop with the store on PostgreSQL
#
# Builds what it runs (release), installs schemathesis with scripts/schemathesis/install.sh,
# and keeps every part's own output in a log directory it names at the end. Fails when any
# part fails.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
quick=""
cases=100000
# The fuzz properties run in release at full size; --quick reuses the test command's debug build.
fuzz_profile=(--release)
postgres=""
restart=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick="--quick"; cases=256; fuzz_profile=() ;;
    --cases) cases="$2"; shift ;;
    --postgres) postgres="$2"; shift ;;
    --restart-postgres) restart="$2"; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1; see scripts/faults.sh --help" >&2; exit 2 ;;
  esac
  shift
done
target="${CARGO_TARGET_DIR:-$root/target}"
logs="$(mktemp -d "${TMPDIR:-/tmp}/caravan-faults-campaign-XXXXXX")"
figures="$logs/figures"
: > "$figures"
cd "$root"

echo "== building (release)"
cargo build --release -p caravan
caravan="$target/release/caravan"
scratch="$logs/scratch"
mkdir -p "$scratch"

# Runs a part, keeping its output, and its `name: value` lines as figures.
part() {
  local name="$1"
  shift
  echo "== $name"
  if ! "$@" 2>&1 | tee "$logs/$name.log"; then
    # CI keeps only what reaches the screen: show the end of the part's own output there too.
    echo "$name failed; the end of its output (all of it is in $logs/$name.log):" >&2
    tail -n 200 "$logs/$name.log" >&2
    exit 1
  fi
  grep -E '^[a-z0-9_]+: ' "$logs/$name.log" >> "$figures" || true
}

part kill-loop "$caravan" bench faults $quick --scratch-dir "$scratch"
if [ -n "$postgres" ]; then
  restart_args=()
  if [ -n "$restart" ]; then restart_args=(--restart-postgres "$restart"); fi
  part kill-loop-postgres "$caravan" bench faults $quick --scratch-dir "$scratch" \
    --postgres "$postgres" "${restart_args[@]}"
fi

# Every fuzz property: package, test target (`lib` for the library's own tests), name filter.
fuzz_targets=(
  "caravan-core economy_properties corrupt_events_and_snapshots"
  "caravan-core manifest_fuzz any_manifest_text"
  "caravan-core bundle_fuzz any_bundle_text"
  "caravan-tasks import_fuzz an_answer"
  "caravan-node sign_in any_sign_in_text"
  "caravan-node lib any_key_request_is_checked"
  "caravan-server gateway any_body_on_the_openai_routes"
)
echo "== fuzzing: $cases inputs per property"
scripts/models/install.sh >/dev/null
for entry in "${fuzz_targets[@]}"; do
  read -r package test filter <<< "$entry"
  args=(-p "$package")
  if [ "$test" = "lib" ]; then args+=(--lib); else args+=(--test "$test"); fi
  part "fuzz-$package-$test" env PROPTEST_CASES="$cases" \
    cargo test "${fuzz_profile[@]}" "${args[@]}" -- --nocapture --test-threads 1 "$filter"
done
# A test's own output lands after libtest's "test NAME ... ", on the same line.
fuzz_lines="$(cat "$logs"/fuzz-*.log | grep -oE 'fuzzed [^:]+: [0-9]+ inputs' || true)"

part api "$caravan" bench api $quick --scratch-dir "$scratch" \
  --schemathesis "$(scripts/schemathesis/install.sh)"
part soak "$caravan" bench soak $quick --scratch-dir "$scratch"

figure() { grep -E "^$1: " "$figures" | tail -1 | sed "s/^$1: //"; }
# A figure from one part's own output (the two kill loops print the same names).
from() { grep -E "^$2: " "$logs/$1.log" | tail -1 | sed "s/^$2: //"; }
echo
echo "== the campaign's figures"
{
  printf '%s\t%s\t%s\n' "figure" "value" "must be"
  printf '%s\t%s\t%s\n' "kills survived (SQLite)" "$(from kill-loop faults_kills)" ""
  printf '%s\t%s\t%s\n' "lost (SQLite)" "$(from kill-loop faults_lost)" "0"
  printf '%s\t%s\t%s\n' "duplicated (SQLite)" "$(from kill-loop faults_duplicated)" "0"
  printf '%s\t%s\t%s\n' "deposits on chain / credited once (SQLite)" "$(from kill-loop faults_deposits_made) / $(from kill-loop faults_deposits_credited)" "equal"
  if [ -n "$postgres" ]; then
    printf '%s\t%s\t%s\n' "kills survived (PostgreSQL)" "$(from kill-loop-postgres faults_kills)" ""
    printf '%s\t%s\t%s\n' "lost (PostgreSQL)" "$(from kill-loop-postgres faults_lost)" "0"
    printf '%s\t%s\t%s\n' "duplicated (PostgreSQL)" "$(from kill-loop-postgres faults_duplicated)" "0"
    printf '%s\t%s\t%s\n' "deposits on chain / credited once (PostgreSQL)" "$(from kill-loop-postgres faults_deposits_made) / $(from kill-loop-postgres faults_deposits_credited)" "equal"
  fi
  # One row per fuzz target, its properties' inputs summed.
  printf '%s\n' "$fuzz_lines" | sed -E 's/^fuzzed (.*): ([0-9]+) inputs$/\1\t\2/' |
    awk -F'\t' '{ sum[$1] += $2 } END { for (t in sum) printf "fuzz inputs: %s\t%d\t\n", t, sum[t] }' | sort
  printf '%s\t%s\t%s\n' "API requests from its OpenAPI document" "$(figure api_fuzz_requests)" ""
  printf '%s\t%s\t%s\n' "5xx answers to them" "$(figure api_fuzz_5xx)" "0"
  printf '%s\t%s\t%s\n' "soak minutes (64 clients)" "$(figure soak_minutes)" ""
  printf '%s\t%s\t%s\n' "soak p99, first / last minute (ms)" "$(figure soak_p99_first_minute_ms) / $(figure soak_p99_last_minute_ms)" ""
  printf '%s\t%s\t%s\n' "soak node memory, first / last minute (MiB)" "$(figure soak_resident_first_minute_mib) / $(figure soak_resident_last_minute_mib)" ""
  printf '%s\t%s\t%s\n' "soak answers a client did not cause" "$(figure soak_unexpected)" "0"
} | column -t -s $'\t'
echo
echo "every part's output: $logs"
