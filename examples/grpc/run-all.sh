#!/usr/bin/env bash
# The whole gRPC example in one go: certificates, start, calls, latency, stop.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<EOF
Usage: $SCRIPT_NAME [--dir DIR] [--hsm-name NAME] [--key-type rsa|ec] [--keep] [--latency N]

Runs setup.sh, start.sh, test.sh (one unary and one streaming call through
the sidecars), the agent's audit log (signatures by the server and the client HSM keys), a
latency comparison (N unary calls: direct, through mutual TLS on a kept-alive connection, and
with a full handshake per call; default 200, 0 to skip) and stop.sh. Exit status 0 only
when every step succeeded.

  --keep   leave everything running (stop later with stop.sh)
EOF
}

keep=0 latency=200
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dir) need_value "$@"; STATE_DIR=$2; shift 2 ;;
    --hsm-name) need_value "$@"; AKV_HSM_NAME=$2; shift 2 ;;
    --key-type) need_value "$@"; KEY_TYPE=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --latency) need_value "$@"; latency=$2; shift 2 ;;
    *) usage_error "unknown option '$1'" ;;
  esac
done
[[ "$latency" =~ ^[0-9]+$ ]] || usage_error "--latency wants a number"
finish_settings
opts=(--dir "$STATE_DIR")
export AKV_HSM_NAME KEY_TYPE

step() { printf '\n== %s\n' "$*"; }
stop_on_exit() { [ "$keep" = 1 ] || "$EXAMPLE_DIR/stop.sh" "${opts[@]}" || true; }
trap stop_on_exit EXIT

step "1/5 keys and certificates ($KEY_TYPE)"
"$EXAMPLE_DIR/setup.sh" "${opts[@]}" --key-type "$KEY_TYPE"
step "2/5 start the gRPC server and the two sidecars"
"$EXAMPLE_DIR/start.sh" "${opts[@]}"
step "3/5 unary and streaming calls through mutual TLS"
"$EXAMPLE_DIR/test.sh" "${opts[@]}"
step "4/5 the HSM signed the handshakes (agent audit log)"
load_akv_env_if_any
log=$(agent_log_file)
[ -n "$log" ] || die "cannot tell where the agent logs" "set AKV_LOG_FILE or log.file in the agent config"
node "$REPO_DIR/dist/examples/grpc/src/audit-log.js" --require --log "$log" \
  "$(key_uri server "$KEY_TYPE")" "$(key_uri client "$KEY_TYPE")"
if [ "$latency" -gt 0 ]; then
  step "5/5 latency of $latency unary calls"
  printf 'direct (no sidecars): '
  "$EXAMPLE_DIR/test.sh" "${opts[@]}" --direct --latency "$latency"
  printf 'through mutual TLS:   '
  "$EXAMPLE_DIR/test.sh" "${opts[@]}" --latency "$latency"
  # A client sidecar without keep-alive or session resumption: every call pays a full mutual TLS
  # handshake, i.e. one HSM signature by the server key and one by the client key.
  certs=$(certs_dir "$KEY_TYPE")
  mkdir -p "$RUN_DIR/handshake" && chmod 0700 "$RUN_DIR/handshake"
  "$EXAMPLE_DIR/sidecar.sh" start client --dir "$STATE_DIR" --name handshake --no-reuse \
    --cert "$certs/client.pem" --key "$(nginx_key_for client "$KEY_TYPE")" --ca "$certs/ca.pem" \
    --listen-socket "$RUN_DIR/handshake/greeter.sock" --server-port "$(sed -n 's/^server_port=//p' "$STATE_DIR/demo.env")" >/dev/null
  handshakes=$((latency < 50 ? latency : 50))
  printf 'full handshake/call:  '
  node "$REPO_DIR/dist/examples/grpc/src/client.js" --socket "$RUN_DIR/handshake/greeter.sock" --latency "$handshakes"
  "$EXAMPLE_DIR/sidecar.sh" stop --dir "$STATE_DIR" --name handshake >/dev/null
fi
if [ "$keep" = 1 ]; then
  step "left running; stop with: examples/grpc/stop.sh --dir $STATE_DIR"
else
  step "stop"
fi
