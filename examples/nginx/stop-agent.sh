#!/usr/bin/env bash
# Stops the akv agent (and the emulator in emulator mode) started by start-agent.sh.
HELP="Usage: stop-agent.sh [--env-file FILE] [--agent-only]

Stops the akv agent started by start-agent.sh and, in emulator mode, the emulator (its keys stay
in STATE_DIR/emulator, so start-agent.sh brings the same keys back). Does nothing when they are
not running.

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

if [ -n "$(daemon_pid "$RUN_DIR/agent.pid")" ]; then
  say "stopping the akv agent (pid $(pid_from "$RUN_DIR/agent.pid"))"
fi
stop_daemon "$RUN_DIR/agent.pid"
if [ "$agent_only" = no ]; then
  if [ -n "$(daemon_pid "$RUN_DIR/emulator.pid")" ]; then
    say "stopping the akv emulator (pid $(pid_from "$RUN_DIR/emulator.pid"))"
  fi
  stop_daemon "$RUN_DIR/emulator.pid"
fi
say "stopped"
