#!/usr/bin/env bash
# Calls the gRPC example through the client sidecar (or, with --direct, straight to the server's
# socket, bypassing both sidecars and TLS: the baseline for latency comparisons).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<EOF
Usage: $SCRIPT_NAME [--dir DIR] [--direct] [client options]

Runs the gRPC client (dist/examples/grpc/src/client.js) against the demo that start.sh
started in DIR (\$STATE_DIR, default tmp/grpc-demo in the repository): by default on the client
sidecar's socket, so the call crosses both sidecars and mutual TLS with the HSM-held keys.

  --direct   call the server's own socket instead (no sidecars, no TLS; as root only root and
             the nginx workers' group can, which is the point of the socket permissions)

Client options (passed on):
$(node "$REPO_DIR/dist/examples/grpc/src/client.js" --help 2>/dev/null | sed -n '/^Options:/,/^$/p' | sed '1d;/--socket/d')

Examples:
  $SCRIPT_NAME                         one unary and one streaming call
  $SCRIPT_NAME --latency 500           latency of 500 unary calls through mutual TLS
  $SCRIPT_NAME --direct --latency 500  the same without sidecars
EOF
}

direct=0
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dir) need_value "$@"; STATE_DIR=$2; shift 2 ;;
    --direct) direct=1; shift ;;
    --socket) usage_error "the socket comes from the demo; use --direct for the server's own socket" ;;
    *) pass+=("$1"); shift ;;
  esac
done
finish_settings
require_built

socket=$CLIENT_SOCKET
[ "$direct" = 1 ] && socket=$SERVER_APP_SOCKET
[ -S "$socket" ] || die "no socket at $socket: the demo is not running in $STATE_DIR" "start it: examples/grpc/start.sh --dir $STATE_DIR"
exec node "$REPO_DIR/dist/examples/grpc/src/client.js" --socket "$socket" ${pass[@]+"${pass[@]}"}
