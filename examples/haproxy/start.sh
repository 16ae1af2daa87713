#!/usr/bin/env bash
# Step 2 of the akv HAProxy example: writes openssl.cnf and haproxy.cfg and starts HAProxy.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: start.sh [--env-file FILE] [--async on|off] [--nbthread N] [--timeout-client SECONDS]

Writes STATE_DIR/openssl.cnf (default, then akv_provider with the agent socket) and
STATE_DIR/haproxy.cfg (two TLS frontends, RSA and EC, each certificate with its key reference
beside it) and starts HAProxy in the background with OPENSSL_CONF in its environment ('bin/akv
dev start --name haproxy': pid and log in STATE_DIR/dev/haproxy.{pid,log}), waiting until both
ports accept connections. A running HAProxy is stopped first.

  --async on|off   ssl-mode-async in 'global' (default on: HAProxy never waits for the HSM)
  --nbthread N     HAProxy threads (default 1)
  --timeout-client SECONDS
                   HAProxy's 'timeout client', which also bounds a handshake (default 30)
All three are remembered in the settings file. The provider logs to STATE_DIR/logs/provider.log at
PROVIDER_LOG_LEVEL (settings file; debug shows each job paused for the HSM)."
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
set -- ${REST_ARGS[@]+"${REST_ARGS[@]}"}
load_env
while [ $# -gt 0 ]; do
  case "$1" in
    --async) need_value "$@"; ASYNC=$2; shift 2 ;;
    --nbthread) need_value "$@"; NBTHREAD=$2; shift 2 ;;
    --timeout-client) need_value "$@"; TIMEOUT_CLIENT=$2; shift 2 ;;
    *) reject_unknown_args "$1" ;;
  esac
done
[[ "$ASYNC" =~ ^(on|off)$ ]] || die "--async must be on or off, not '$ASYNC'" "pass --async on"
[[ "$NBTHREAD" =~ ^[1-9][0-9]?$ ]] || die "--nbthread must be a number from 1 to 64, not '$NBTHREAD'" "pass --nbthread 1"
[[ "$TIMEOUT_CLIENT" =~ ^[1-9][0-9]{0,4}$ ]] || die "--timeout-client must be a whole number of seconds from 1 to 99999, not '$TIMEOUT_CLIENT'" "pass --timeout-client 30"
require_commands haproxy
[ -S "$AGENT_SOCKET" ] || die "the akv agent is not running (no socket $AGENT_SOCKET)" "run ./setup.sh"
for kind in rsa ec; do
  { [ -s "$CERT_DIR/$kind.pem" ] && [ -s "$CERT_DIR/$kind.pem.key" ]; } || die "no certificate or key reference for $kind in $CERT_DIR" "run ./setup.sh"
done
# Remember the choices for test.sh and the next start.
sed -i -e "s/^ASYNC=.*/ASYNC=$ASYNC/" -e "s/^NBTHREAD=.*/NBTHREAD=$NBTHREAD/" -e "s/^TIMEOUT_CLIENT=.*/TIMEOUT_CLIENT=$TIMEOUT_CLIENT/" "$ENV_FILE"
grep -q '^TIMEOUT_CLIENT=' "$ENV_FILE" || printf 'TIMEOUT_CLIENT=%s\n' "$TIMEOUT_CLIENT" >>"$ENV_FILE"

write_openssl_cnf
async_line=""
[ "$ASYNC" = off ] || async_line="    ssl-mode-async"
render "$EXAMPLE_DIR/templates/haproxy.cfg.template" "$HAPROXY_CFG" "NBTHREAD=$NBTHREAD" "ASYNC_LINE=$async_line" \
  "RSA_PORT=$RSA_PORT" "EC_PORT=$EC_PORT" "CERT_DIR=$CERT_DIR" "TIMEOUT_CLIENT=$TIMEOUT_CLIENT"

# HAProxy in the foreground (-db) as a service of DEV_DIR, with the provider configuration and
# its log in its environment; nothing else of ours.
akv_dev stop --dir "$DEV_DIR" --name haproxy --quiet
akv_dev start --dir "$DEV_DIR" --name haproxy --ready-port "$EC_PORT" --quiet -- \
  env -u AKV_AGENT_SOCKET -u AKV_CONFIG OPENSSL_CONF="$OPENSSL_CNF" AKV_LOG_FILE="$PROVIDER_LOG" \
  AKV_LOG_LEVEL="$PROVIDER_LOG_LEVEL" "$(command -v haproxy)" -db -f "$HAPROXY_CFG" ||
  die "haproxy did not start" "read the message above, and $PROVIDER_LOG"
port_open "$RSA_PORT" || die "haproxy does not listen on 127.0.0.1:$RSA_PORT" "read $DEV_DIR/haproxy.log"
say "$(haproxy -v | head -n 1 | cut -d' ' -f1-3) running: pid $(cat "$DEV_DIR/haproxy.pid"), nbthread $NBTHREAD, ssl-mode-async $ASYNC"
say "  RSA: https://localhost:$RSA_PORT  (key $(key_uri_of rsa))"
say "  EC:  https://localhost:$EC_PORT  (key $(key_uri_of ec))"
say "try: curl --cacert $CERT_DIR/rsa.pem https://localhost:$RSA_PORT/"
say "next: ./test.sh"
