#!/usr/bin/env bash
# Last step of the akv HAProxy example: stops HAProxy (and with --all the agent and emulator).
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: stop.sh [--env-file FILE] [--all]

Stops HAProxy ('bin/akv dev stop --name haproxy'). With --all also stops the akv agent and the
emulator ('bin/akv dev down') and removes the state directory and the settings file."
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
load_env
if [ -d "$DEV_DIR" ]; then akv_dev stop --dir "$DEV_DIR" --name haproxy; else say "haproxy is not running"; fi
if [ "$all" = yes ]; then
  if (dev_down "$DEV_DIR"); then say "agent and emulator stopped"; else warn "the agent and emulator of $DEV_DIR may still run"; fi
  case "$STATE_DIR" in /tmp/* | "${TMPDIR:-/tmp}"/*) rm -rf "$STATE_DIR" ;; *) say "kept $STATE_DIR (not under /tmp)" ;; esac
  rm -f "$ENV_FILE"
  say "removed the state and $ENV_FILE"
fi
