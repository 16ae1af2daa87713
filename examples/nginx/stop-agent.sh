#!/usr/bin/env bash
# Stops the akv agent (and the emulator in emulator mode) started by start-agent.sh.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: stop-agent.sh [--env-file FILE] [--agent-only]

Stops the akv agent started by start-agent.sh and, in emulator mode, the emulator
('bin/akv dev down --dir STATE_DIR/dev'; its keys stay in STATE_DIR/dev/emulator, so
start-agent.sh brings the same keys back). Does nothing when they are not running.

  --agent-only   stop the agent but leave the emulator running"
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
set -- ${REST_ARGS[@]+"${REST_ARGS[@]}"}
agent_only=no
while [ $# -gt 0 ]; do
  case "$1" in
    --agent-only) agent_only=yes; shift ;;
    *) reject_unknown_args "$1" ;;
  esac
done
load_env

if [ "$AKV_MODE" = emulator ] && [ "$agent_only" = no ]; then
  if [ -d "$DEV_DIR" ]; then
    say "stopping the akv agent and emulator: bin/akv dev down --dir $DEV_DIR"
    dev_down "$DEV_DIR"
  fi
else
  if [ -n "$(daemon_pid "$AGENT_PID_FILE")" ]; then
    say "stopping the akv agent (pid $(daemon_pid "$AGENT_PID_FILE"))"
  fi
  stop_daemon "$AGENT_PID_FILE"
fi
say "stopped"
