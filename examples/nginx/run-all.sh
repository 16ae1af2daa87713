#!/usr/bin/env bash
# The whole akv nginx example in one command: every step script, in order.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: run-all.sh [--env-file FILE] [--keep] [setup-env.sh options...]

Runs setup-env.sh, start-agent.sh, generate-cert.sh, start-server.sh and test-client.sh, then
stop-server.sh and cleanup.sh. Stops at the first step that fails (and still cleans up) and
exits with its status.

  --keep   leave the agent and nginx running at the end (./cleanup.sh stops them)
Other options go to setup-env.sh, e.g. --mode azure --hsm-name myhsm."
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
here=$(cd "$(dirname "$0")" && pwd)

step() {
  local script=$1
  shift
  printf '\n==> %s\n' "$(printf '%s' "$script $*" | sed 's/ *$//')"
  "$here/$script" --env-file "$ENV_FILE" "$@"
}

finish() {
  local status=$1
  if [ "$keep" = yes ]; then
    printf '\n==> left running (--keep); stop everything with: %s/cleanup.sh --env-file %s\n' "$here" "$ENV_FILE"
  else
    if [ "$status" -ne 0 ] && [ -f "$ENV_FILE" ]; then
      load_env
      if [ -s "$NGINX_ERROR_LOG" ]; then
        printf '\n--- last lines of %s ---\n' "$NGINX_ERROR_LOG"
        tail -n 15 "$NGINX_ERROR_LOG"
      fi
    fi
    step stop-server.sh || true
    step cleanup.sh || true
  fi
  if [ "$status" -eq 0 ]; then
    printf '\nrun-all: every step passed\n'
  else
    printf '\nrun-all: FAILED (status %s)\n' "$status"
  fi
  exit "$status"
}

step setup-env.sh ${setup_args[@]+"${setup_args[@]}"} || finish $?
for script in start-agent.sh generate-cert.sh start-server.sh test-client.sh; do
  step "$script" || finish $?
done
finish 0
