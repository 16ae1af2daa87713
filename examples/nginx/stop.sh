#!/usr/bin/env bash
# Last step of the akv nginx example: stops nginx (and with --all the agent and emulator).
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: stop.sh [--env-file FILE] [--all]

Stops nginx ('bin/akv dev stop --name nginx': SIGTERM, SIGKILL when it lingers). With --all also
stops the akv agent and (emulator mode) the emulator ('bin/akv dev down'), then removes
STATE_DIR (certificates, key references, logs, the emulator's keys) and the settings file. Keys
in a real HSM (AKV_MODE=azure) are never deleted. Safe to run more than once."
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
  say "nothing to stop (no $ENV_FILE)"
  exit 0
fi
load_env
if [ -d "$DEV_DIR" ]; then akv_dev stop --dir "$DEV_DIR" --name nginx; else say "nginx is not running"; fi
[ "$all" = yes ] || exit 0

# bin/akv dev down: the agent (and in emulator mode the emulator) of DEV_DIR.
if [ -d "$DEV_DIR" ]; then
  if (dev_down "$DEV_DIR"); then say "agent and emulator stopped"; else warn "the agent and emulator of $DEV_DIR may still run"; fi
fi
# Only a directory setup.sh made (it has the marker) is removed.
if [ -f "$STATE_DIR/.akv-nginx-state" ]; then
  rm -rf "$STATE_DIR"
  say "removed $STATE_DIR"
elif [ -d "$STATE_DIR" ]; then
  warn "$STATE_DIR has no .akv-nginx-state marker: left in place"
fi
rm -f "$ENV_FILE"
say "removed $ENV_FILE"
# `npm run demo -- --keep` keeps its settings in a private akv-demo-* directory: gone with them.
env_dir=$(dirname "$ENV_FILE")
case $(basename "$env_dir") in
  akv-demo-*) if rmdir "$env_dir" 2>/dev/null; then say "removed $env_dir"; fi ;;
esac
