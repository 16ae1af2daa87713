#!/usr/bin/env bash
# The whole akv HAProxy example in one go: setup, start, test, stop --all.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: run-all.sh [--env-file FILE] [--keep] [--hsm-name NAME] [--latency-ms N]

Runs setup.sh (with --hsm-name and --latency-ms), start.sh, test.sh and stop.sh --all in
order (--keep leaves everything running). Stops at the first step that fails (and cleans up
unless --keep)."
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
set -- ${REST_ARGS[@]+"${REST_ARGS[@]}"}
keep=no
setup_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=yes; shift ;;
    --hsm-name | --latency-ms) need_value "$@"; setup_args+=("$1" "$2"); shift 2 ;;
    *) reject_unknown_args "$1" ;;
  esac
done
step() {
  printf '\n==> %s\n' "$1"
  "$EXAMPLE_DIR/$1" --env-file "$ENV_FILE" "${@:2}"
}
status=0
step setup.sh ${setup_args[@]+"${setup_args[@]}"} && step start.sh && step test.sh || status=$?
if [ "$keep" = no ]; then step stop.sh --all || true; fi
if [ "$status" -eq 0 ]; then printf '\nrun-all: every step passed\n'; else printf '\nrun-all: a step failed (exit %s)\n' "$status"; fi
exit "$status"
