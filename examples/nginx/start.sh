#!/usr/bin/env bash
# Step 2 of the akv nginx example: writes openssl.cnf and nginx.conf and starts nginx.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: start.sh [--env-file FILE]

Writes STATE_DIR/openssl.cnf (activates 'default' and 'akv_provider', names the agent socket) and
STATE_DIR/nginx/nginx.conf (two HTTPS servers on 127.0.0.1: RSA_PORT with the RSA key, EC_PORT
with the EC key), checks it with 'nginx -t' and starts nginx in the foreground ('daemon off;')
with OPENSSL_CONF in its environment, as the service 'nginx' of STATE_DIR/dev ('bin/akv dev start
--name nginx': pid and log in STATE_DIR/dev/nginx.{pid,log}), waiting until both ports accept
connections. A running nginx is stopped first; to load a new configuration without stopping,
use 'nginx -s reload' (the README shows the command line).

ssl_certificate_key is the key-reference PEM (STATE_DIR/certs/*.keyref.pem) on nginx < 1.29, and
\"store:managedhsm:HSM:KEY\" on nginx 1.29 and newer (AKV_NGINX_KEY_MODE=keyref|store overrides).
When started as root, workers run as NGINX_USER (www-data)."
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
reject_unknown_args ${REST_ARGS[@]+"${REST_ARGS[@]}"}
load_env
NGINX=$(nginx_bin)
require_agent
for kind in rsa ec; do
  { [ -s "$CERT_DIR/$kind.crt" ] && [ -s "$CERT_DIR/$kind.keyref.pem" ]; } || die "no certificate for the $(label_of "$kind") key in $CERT_DIR" "run ./setup.sh"
done

# A running nginx is stopped first: its ports are then free for the new one.
akv_dev stop --dir "$DEV_DIR" --name nginx --quiet
for port in "$RSA_PORT" "$EC_PORT"; do
  if port_open "$port"; then
    die "port $port on 127.0.0.1 is already in use" "stop what listens there, or pick new ports: ./setup.sh --new-ports"
  fi
done

key_mode=${AKV_NGINX_KEY_MODE:-}
if [ -z "$key_mode" ]; then
  if nginx_reads_store_uris; then key_mode=store; else key_mode=keyref; fi
fi
key_ref() {
  local kind=$1
  case "$key_mode" in
    store) printf '"store:%s"' "$(key_uri_of "$kind")" ;;
    keyref) printf '%s' "$CERT_DIR/$kind.keyref.pem" ;;
    *) die "AKV_NGINX_KEY_MODE must be 'keyref' or 'store', not '$key_mode'" "unset it to choose by nginx version" ;;
  esac
}

user_directive="# (started by $(id -un): workers run as the same user)"
if is_root; then
  id "$NGINX_USER" >/dev/null 2>&1 || die "the nginx worker user '$NGINX_USER' does not exist" "set NGINX_USER in $ENV_FILE"
  user_directive="user $NGINX_USER $(id -gn "$NGINX_USER");"
fi

write_openssl_cnf
mkdir -p "$NGINX_PREFIX/logs" "$NGINX_PREFIX/tmp"
chmod 0755 "$NGINX_PREFIX" "$NGINX_PREFIX/tmp"
render "$EXAMPLE_DIR/templates/nginx.conf.template" "$NGINX_CONF" \
  "USER_DIRECTIVE=$user_directive" "WORKER_PROCESSES=$WORKER_PROCESSES" "NGINX_PREFIX=$NGINX_PREFIX" \
  "CERT_DIR=$CERT_DIR" "AKV_HSM_NAME=$AKV_HSM_NAME" \
  "RSA_PORT=$RSA_PORT" "RSA_KEY_NAME=$RSA_KEY_NAME" "RSA_KEY_SIZE=$RSA_KEY_SIZE" "RSA_KEY_REF=$(key_ref rsa)" \
  "EC_PORT=$EC_PORT" "EC_KEY_NAME=$EC_KEY_NAME" "EC_CURVE=$EC_CURVE" "EC_KEY_REF=$(key_ref ec)"

# nginx with the provider: OPENSSL_CONF is read once, when nginx initialises OpenSSL.
run_nginx() {
  env -u OPENSSL_MODULES OPENSSL_CONF="$OPENSSL_CNF" "$NGINX" -p "$NGINX_PREFIX" -c "$NGINX_CONF" -e "$NGINX_ERROR_LOG" "$@"
}

if ! run_nginx -t -q 2>"$NGINX_PREFIX/logs/nginx-t.log"; then
  cat "$NGINX_PREFIX/logs/nginx-t.log" >&2
  die "nginx -t rejected $NGINX_CONF" "read the message above; './setup.sh' must have run"
fi

say "starting nginx $(nginx_version) (key mode: $key_mode, workers: $WORKER_PROCESSES$(is_root && printf ' as %s' "$NGINX_USER"))"
# nginx in the foreground ('daemon off;' in nginx.conf) as a service of DEV_DIR, with the provider
# configuration in its environment; nothing else of ours.
akv_dev start --dir "$DEV_DIR" --name nginx --ready-port "$EC_PORT" --quiet -- \
  env -u OPENSSL_MODULES -u AKV_AGENT_SOCKET -u AKV_CONFIG OPENSSL_CONF="$OPENSSL_CNF" \
  "$NGINX" -p "$NGINX_PREFIX" -c "$NGINX_CONF" -e "$NGINX_ERROR_LOG" || {
  tail -n 20 "$NGINX_ERROR_LOG" >&2 || true
  die "nginx did not start" "read the message above, and $NGINX_ERROR_LOG"
}
port_open "$RSA_PORT" || die "nginx does not listen on 127.0.0.1:$RSA_PORT" "read $NGINX_ERROR_LOG"
master=$(cat "$DEV_DIR/nginx.pid")
say "nginx running: master pid $master, workers $(pgrep -P "$master" 2>/dev/null | paste -sd' ' -)"
say "  RSA: https://localhost:$RSA_PORT  (key $(key_uri_of rsa), certificate $CERT_DIR/rsa.crt)"
say "  EC:  https://localhost:$EC_PORT  (key $(key_uri_of ec), certificate $CERT_DIR/ec.crt)"
say "try: curl --cacert $CERT_DIR/rsa.crt https://localhost:$RSA_PORT/health"
say "next: ./test.sh"
