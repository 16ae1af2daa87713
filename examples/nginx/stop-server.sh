#!/usr/bin/env bash
# Step 6 of the akv nginx example: stops the nginx started by start-server.sh.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: stop-server.sh [--env-file FILE]

Stops the example's nginx gracefully (nginx -s quit: open requests finish), waiting up to 15 s
before it sends SIGTERM. Does nothing when nginx is not running. The agent keeps running
(./stop-agent.sh or ./cleanup.sh stop it)."
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
reject_unknown_args ${REST_ARGS[@]+"${REST_ARGS[@]}"}
load_env

master=$(daemon_pid "$NGINX_PID")
if [ -z "$master" ]; then
  say "nginx is not running"
  exit 0
fi
say "stopping nginx (master pid $master)"
# shellcheck disable=SC2094 # nginx -s quit appends to its error log; it does not read it
env OPENSSL_CONF="$OPENSSL_CNF" "$(nginx_bin)" -p "$NGINX_PREFIX" -c "$NGINX_CONF" -e "$NGINX_ERROR_LOG" -s quit 2>>"$NGINX_ERROR_LOG" \
  || kill -QUIT "$master" 2>/dev/null || true
if ! wait_until 15 proc_gone "$master"; then
  warn "nginx did not quit within 15 s: sending SIGTERM"
  kill -TERM "$master" 2>/dev/null || true
  wait_until 10 proc_gone "$master" || kill -KILL "$master" 2>/dev/null || true
fi
rm -f "$NGINX_PID"
say "nginx stopped"
