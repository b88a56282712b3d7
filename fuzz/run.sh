#!/usr/bin/env bash
#
# run.sh - build the fuzz targets and run each for a bounded time on its seed corpus.
# See docs/fuzzing.md. Run with --help for the options.
set -euo pipefail

FUZZ_DIR=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
PROG=${0##*/}
# The cargo-fuzz release this project is tested with; installed when missing.
CARGO_FUZZ_VERSION=0.13.2
TARGETS=(csr csr_signed spiffe_id inspect_input crl ca_request_body p521_key_share ocsp_request ocsp_get_path ocsp_response)

usage() {
    cat <<EOF
Usage: $PROG [--minutes N | --seconds N] [--ci] [--build-only] [TARGET...]

Builds the cargo-fuzz targets of fuzz/ (stable toolchain, no sanitizer) and runs each
TARGET in turn (default: all of ${TARGETS[*]}) for the given time: first every
seed in fuzz/corpus/TARGET once, then coverage-guided fuzzing. New inputs go to
fuzz/work/TARGET (not committed); a crash, a panic, a timeout or an out-of-memory input
stops the run with exit status 1 and leaves the input in fuzz/artifacts/TARGET/.

Options:
  --minutes N    fuzz each target for N minutes (default: 1)
  --seconds N    fuzz each target for N seconds
  --ci           what CI runs: 15 seconds per target unless --seconds/--minutes says
                 otherwise
  --build-only   build the targets and stop
  -h, --help     show this help

Environment:
  FUZZ_TARGET_DIR   cargo target directory (default: fuzz/target)
  FUZZ_SANITIZER    none (default) or address; address needs RUSTC_BOOTSTRAP=1, which
                    this script sets for that build only (docs/fuzzing.md)
  FUZZ_TIMEOUT      seconds one input may take before it counts as a hang (default: 10)

Examples:
  fuzz/run.sh --minutes 5 crl           # five minutes on the CRL target
  fuzz/run.sh --ci                      # every target, 15 s each
EOF
}

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 2
}

seconds=60
seconds_given=
ci=
build_only=
targets=()
while (($#)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --minutes)
        [[ ${2:-} =~ ^[0-9]+$ ]] || die "--minutes needs a whole number"
        seconds=$(($2 * 60)) seconds_given=1
        shift 2
        ;;
    --seconds)
        [[ ${2:-} =~ ^[0-9]+$ ]] || die "--seconds needs a whole number"
        seconds=$2 seconds_given=1
        shift 2
        ;;
    --ci)
        ci=1
        shift
        ;;
    --build-only)
        build_only=1
        shift
        ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
        [[ " ${TARGETS[*]} " == *" $1 "* ]] || die "unknown target $1; the targets are: ${TARGETS[*]}"
        targets+=("$1")
        shift
        ;;
    esac
done
((${#targets[@]})) || targets=("${TARGETS[@]}")
if [[ -n $ci && -z $seconds_given ]]; then
    seconds=15
fi
((seconds > 0)) || die "the time per target must be at least one second"

target_dir=${FUZZ_TARGET_DIR:-$FUZZ_DIR/target}
sanitizer=${FUZZ_SANITIZER:-none}
timeout=${FUZZ_TIMEOUT:-10}
case $sanitizer in
none) ;;
address) export RUSTC_BOOTSTRAP=1 ;;
*) die "FUZZ_SANITIZER must be none or address, not $sanitizer" ;;
esac

# cargo-fuzz is a cargo subcommand from crates.io; never skip fuzzing because it is missing.
installed=$(cargo fuzz --version 2>/dev/null || true)
if [[ $installed != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION (found: ${installed:-none})"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

cd "$FUZZ_DIR"
# cargo fuzz has no --locked: check the committed lock file first, as CI does for the workspace.
if ! cargo metadata --locked --format-version 1 >/dev/null; then
    die "fuzz/Cargo.lock does not match the crates it builds; run
    cargo update --workspace --manifest-path fuzz/Cargo.toml
and commit fuzz/Cargo.lock"
fi
echo "== building the fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer" --target-dir "$target_dir"
[[ -z $build_only ]] || exit 0

mkdir -p work/logs
failed=()
for target in "${targets[@]}"; do
    mkdir -p "work/$target"
    log=work/logs/$target.log
    args=(
        "-max_total_time=$seconds" "-timeout=$timeout" -print_final_stats=1
        -rss_limit_mb=2048
    )
    [[ ! -f dict/$target.dict ]] || args+=("-dict=dict/$target.dict")
    seeds=$(find "corpus/$target" -type f | wc -l)
    echo "== $target: $seeds seeds, then ${seconds}s of fuzzing (log: fuzz/$log)"
    status=0
    cargo fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" "$target" \
        "work/$target" "corpus/$target" -- "${args[@]}" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/cov \1, ft \2, corpus \3/p' <<<"$done_line")
    if ((status == 0)); then
        echo "   ok: ${runs:-?} executions, ${speed:-?}/s, ${cov:-no coverage line}"
    else
        failed+=("$target")
        echo "   FAILED (exit $status): the input is in fuzz/artifacts/$target/; the end of the log:"
        tail -n 40 "$log" | sed 's/^/   | /'
    fi
done

if ((${#failed[@]})); then
    echo "$PROG: ${#failed[@]} target(s) failed: ${failed[*]} (docs/fuzzing.md: a crash becomes a regression test)" >&2
    exit 1
fi
echo "fuzzing: ${#targets[@]} passed, 0 failed"
