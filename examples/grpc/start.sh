#!/usr/bin/env bash
# Starts the gRPC example: the gRPC server on a Unix socket, the server sidecar (nginx,
# mutual TLS with the server's HSM key) and the client sidecar (nginx, mutual TLS with the
# client's HSM key), so that test.sh can call through them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<EOF
Usage: $SCRIPT_NAME [--dir DIR] [--hsm-name NAME] [--key-type rsa|ec]

  gRPC client --(unix socket)--> client sidecar ==mutual TLS==> server sidecar --(unix socket)--> gRPC server

Starts, in DIR (\$STATE_DIR, default tmp/grpc-demo in the repository):
  the HSM emulator and the agent   (AKV_MODE=emulator, default; bin/akv dev up --dir DIR/akv-dev,
                                    as root with --socket-group <the workers' group>)
  the gRPC server                  DIR/run/server/greeter.sock   (bin/akv dev start --dir DIR/akv-dev
                                    --name grpc-server: log DIR/akv-dev/grpc-server.log)
  the server sidecar (nginx)       127.0.0.1:<free port>         DIR/nginx/server/
  the client sidecar (nginx)       DIR/run/client/greeter.sock   DIR/nginx/client/
using the key set --key-type (default: \$KEY_TYPE or rsa). Certificates that are missing are
made first (setup.sh). Idempotent: what already runs with the same settings is left
alone; a sidecar whose settings changed (e.g. another --key-type) is restarted.

As root, nginx workers run as \$NGINX_USER (www-data): the server's socket directory is
group-owned by that user's group (mode 2750), the client's socket directory stays 0700.
Stop everything with stop.sh.
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dir) need_value "$@"; STATE_DIR=$2; shift 2 ;;
    --hsm-name) need_value "$@"; AKV_HSM_NAME=$2; shift 2 ;;
    --key-type) need_value "$@"; KEY_TYPE=$2; shift 2 ;;
    *) usage_error "unknown option '$1'" ;;
  esac
done
finish_settings
require_built
ensure_akv_env

certs=$(certs_dir "$KEY_TYPE")
for f in ca.pem server.pem client.pem server.keyref.pem client.keyref.pem; do
  if [ ! -s "$certs/$f" ]; then
    say "no $KEY_TYPE certificates yet: running setup.sh"
    STATE_DIR=$STATE_DIR AKV_HSM_NAME=$AKV_HSM_NAME "$EXAMPLE_DIR/setup.sh" --key-type "$KEY_TYPE"
    break
  fi
done

# Socket directories. Whoever reaches the server's socket bypasses mutual TLS, whoever reaches
# the client sidecar's socket calls with the client's identity: each is open to one party only.
mkdir -p "$RUN_DIR/server" "$RUN_DIR/client" "$LOG_DIR"
chmod 0711 "$STATE_DIR" "$RUN_DIR"
chmod 0700 "$RUN_DIR/client"
if is_root; then
  chgrp "$(worker_group)" "$RUN_DIR/server"
  chmod 2750 "$RUN_DIR/server" # setgid: the socket is created group-owned by the workers' group
  user_can_use "$NGINX_USER" "$AKV_AGENT_SOCKET" ||
    die "the nginx workers ($NGINX_USER) cannot use the agent socket $AKV_AGENT_SOCKET" \
      "run the agent with \"socketGroup\": \"$(worker_group)\" in its config (docs/configuration.md)"
else
  chmod 0700 "$RUN_DIR/server"
fi

# The gRPC server: plaintext on its socket, umask 007 so the socket is 0770 (owner + group).
# (bin/akv dev start: nothing to do when it already runs; the log is quoted when it fails.)
akv_dev start --dir "$DEV_DIR" --name grpc-server --ready-log '"listening":' -- \
  bash -c 'umask 007 && exec "$@"' grpc-server node "$SERVER_APP_JS" --socket "$SERVER_APP_SOCKET" ||
  die "the gRPC server did not start" "read the message above"

server_port=$("$EXAMPLE_DIR/sidecar.sh" start server --dir "$STATE_DIR" --name server \
  --cert "$certs/server.pem" --key "$(nginx_key_for server "$KEY_TYPE")" --ca "$certs/ca.pem" \
  --app-socket "$SERVER_APP_SOCKET" | sed -n 's/^port=//p')
[ -n "$server_port" ] || die "the server sidecar did not report its port"

"$EXAMPLE_DIR/sidecar.sh" start client --dir "$STATE_DIR" --name client \
  --cert "$certs/client.pem" --key "$(nginx_key_for client "$KEY_TYPE")" --ca "$certs/ca.pem" \
  --listen-socket "$CLIENT_SOCKET" --server-port "$server_port" >/dev/null

printf 'key_type=%s\nserver_port=%s\nclient_socket=%s\nserver_socket=%s\n' \
  "$KEY_TYPE" "$server_port" "$CLIENT_SOCKET" "$SERVER_APP_SOCKET" >"$STATE_DIR/demo.env"
say "running ($KEY_TYPE keys from $AKV_HSM_NAME):"
say "  gRPC client -> $CLIENT_SOCKET -> client sidecar ==mTLS==> 127.0.0.1:$server_port -> server sidecar -> $SERVER_APP_SOCKET"
say "call it:  examples/grpc/test.sh --dir $STATE_DIR"
