#!/usr/bin/env bash
# Step 7 of the akv nginx example: stops everything and removes what the scripts made.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: cleanup.sh [--env-file FILE] [--all]

Stops nginx, the akv agent and (emulator mode) the emulator, then removes STATE_DIR
(certificates, key references, logs, the emulator's keys). Keys in a real HSM (AKV_MODE=azure) are
never deleted. Safe to run more than once.

  --all   also remove the settings file (.env)"
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
set -- ${REST_ARGS[@]+"${REST_ARGS[@]}"}
all=no
while [ $# -gt 0 ]; do
  case "$1" in
    --all) all=yes; shift ;;
    *) reject_unknown_args "$1" ;;
  esac
done
if [ ! -f "$ENV_FILE" ]; then
  say "nothing to clean up (no $ENV_FILE)"
  exit 0
fi
load_env
here=$(dirname "$0")
if [ -d "$STATE_DIR" ]; then
  "$here/stop-server.sh" --env-file "$ENV_FILE"
  "$here/stop-agent.sh" --env-file "$ENV_FILE"
  # Only a directory the scripts made (it has the marker) is removed.
  if [ -f "$STATE_DIR/.akv-nginx-state" ]; then
    rm -rf "$STATE_DIR"
    say "removed $STATE_DIR"
  else
    warn "$STATE_DIR has no .akv-nginx-state marker: left in place"
  fi
fi
if [ "$all" = yes ]; then
  rm -f "$ENV_FILE"
  say "removed $ENV_FILE"
fi
say "clean"
