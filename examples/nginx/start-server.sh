#!/usr/bin/env bash
# Step 4 of the akv nginx example: starts nginx with the two HSM-held keys.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: start-server.sh [--env-file FILE] [--reload]

Writes STATE_DIR/openssl.cnf (activates 'default' and 'akv_provider', names the agent socket) and
STATE_DIR/nginx/nginx.conf (two HTTPS servers on 127.0.0.1: RSA_PORT with the RSA key, EC_PORT
with the EC key), checks it with 'nginx -t' and starts nginx with OPENSSL_CONF set, as a daemon
whose prefix, pid file and logs are in STATE_DIR/nginx.

ssl_certificate_key is the key-reference PEM (STATE_DIR/certs/*.keyref.pem) on nginx < 1.29, and
\"store:managedhsm:HSM:KEY\" on nginx 1.29 and newer (AKV_NGINX_KEY_MODE=keyref|store overrides).
When started as root, workers run as NGINX_USER (www-data). Does nothing if nginx is already
running, unless --reload: then the configuration is written again and nginx reloads it.

  --reload   rewrite the configuration and reload a running nginx (nginx -s reload)"
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
set -- ${REST_ARGS[@]+"${REST_ARGS[@]}"}
reload=no
while [ $# -gt 0 ]; do
  case "$1" in
    --reload) reload=yes; shift ;;
    *) reject_unknown_args "$1" ;;
  esac
done
load_env
NGINX=$(nginx_bin)
require_agent
for kind in rsa ec; do
  { [ -s "$CERT_DIR/$kind.crt" ] && [ -s "$CERT_DIR/$kind.keyref.pem" ]; } || die "no certificate for the $(label_of "$kind") key in $CERT_DIR" "run ./generate-cert.sh"
done

running_pid=$(daemon_pid "$NGINX_PID")
if [ -n "$running_pid" ] && [ "$reload" = no ]; then
  say "nginx is already running (master pid $running_pid): https://localhost:$RSA_PORT (RSA), https://localhost:$EC_PORT (EC)"
  exit 0
fi
if [ -z "$running_pid" ]; then
  for port in "$RSA_PORT" "$EC_PORT"; do
    if port_open "$port"; then
      die "port $port on 127.0.0.1 is already in use" "stop what listens there, or pick new ports: ./setup-env.sh --new-ports"
    fi
  done
fi

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
  die "nginx -t rejected $NGINX_CONF" "read the message above; './generate-cert.sh' and './start-agent.sh' must have run"
fi

worker_pids() { pgrep -P "$1" 2>/dev/null | paste -sd' ' -; }

if [ -n "$running_pid" ]; then
  old_workers=$(worker_pids "$running_pid")
  run_nginx -s reload 2>>"$NGINX_ERROR_LOG" || die "nginx -s reload failed" "read $NGINX_ERROR_LOG"
  # A reload is done when the old workers are gone and new ones serve.
  # shellcheck disable=SC2317 # called through wait_until
  reloaded() {
    local pid
    for pid in $old_workers; do if kill -0 "$pid" 2>/dev/null; then return 1; fi; done
    [ -n "$(worker_pids "$running_pid")" ]
  }
  wait_until 30 reloaded || die "nginx did not finish reloading within 30 s" "read $NGINX_ERROR_LOG"
  say "nginx reloaded (master pid $running_pid, workers $(worker_pids "$running_pid"))"
  exit 0
fi

say "starting nginx $(nginx_version) (key mode: $key_mode, workers: $WORKER_PROCESSES$(is_root && printf ' as %s' "$NGINX_USER"))"
run_nginx 2>>"$NGINX_ERROR_LOG" || {
  tail -n 20 "$NGINX_ERROR_LOG" >&2
  die "nginx did not start" "read $NGINX_ERROR_LOG"
}
listening() { [ -n "$(daemon_pid "$NGINX_PID")" ] && port_open "$RSA_PORT" && port_open "$EC_PORT"; }
if ! wait_until 30 listening; then
  tail -n 20 "$NGINX_ERROR_LOG" >&2
  die "nginx started but does not listen on ports $RSA_PORT and $EC_PORT" "read $NGINX_ERROR_LOG"
fi
master=$(daemon_pid "$NGINX_PID")
say "nginx running: master pid $master, workers $(worker_pids "$master")"
say "  RSA: https://localhost:$RSA_PORT  (key $(key_uri_of rsa), certificate $CERT_DIR/rsa.crt)"
say "  EC:  https://localhost:$EC_PORT  (key $(key_uri_of ec), certificate $CERT_DIR/ec.crt)"
say "try: curl --cacert $CERT_DIR/rsa.crt https://localhost:$RSA_PORT/health"
say "next: ./test-client.sh"
