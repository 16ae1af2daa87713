#!/usr/bin/env bash
# The whole akv nginx example in one go: setup, start, test, stop --all.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: run-all.sh [--env-file FILE] [--keep] [setup.sh options...]

Runs setup.sh (with the options given, e.g. --hsm-name NAME or --mode azure), start.sh, test.sh
and stop.sh --all in order (--keep leaves everything running: ./stop.sh --all stops it). Stops at
the first step that fails (and cleans up unless --keep)."
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
set -- ${REST_ARGS[@]+"${REST_ARGS[@]}"}
keep=no
setup_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=yes; shift ;;
    *) setup_args+=("$1"); shift ;;
  esac
done
step() {
  printf '\n==> %s\n' "$*"
  "$EXAMPLE_DIR/$1" --env-file "$ENV_FILE" "${@:2}"
}
status=0
step setup.sh ${setup_args[@]+"${setup_args[@]}"} && step start.sh && step test.sh || status=$?
if [ "$status" -ne 0 ] && [ -f "$ENV_FILE" ]; then
  load_env
  if [ -s "$NGINX_ERROR_LOG" ]; then
    printf '\n--- last lines of %s ---\n' "$NGINX_ERROR_LOG"
    tail -n 15 "$NGINX_ERROR_LOG"
  fi
fi
if [ "$keep" = no ]; then step stop.sh --all || true; fi
if [ "$status" -eq 0 ]; then printf '\nrun-all: every step passed\n'; else printf '\nrun-all: a step failed (exit %s)\n' "$status"; fi
exit "$status"
