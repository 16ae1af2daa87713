#!/usr/bin/env bash
# Starts or stops one nginx sidecar of the gRPC example (start.sh uses it for the two
# sidecars of the demo; the tests use it for extra, misbehaving clients).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<EOF
Usage:
  $SCRIPT_NAME start server --name NAME --cert FILE --key KEY --ca FILE --app-socket PATH [--port N]
  $SCRIPT_NAME start client --name NAME --cert FILE --key KEY --ca FILE --listen-socket PATH
                          --server-port N [--server-name HOST]
  $SCRIPT_NAME start client --name NAME --no-client-cert --ca FILE --listen-socket PATH --server-port N
  (client options: [--server-name HOST] [--no-reuse])
  $SCRIPT_NAME stop --name NAME | --all
  $SCRIPT_NAME port --name NAME

One nginx per sidecar, in STATE_DIR/nginx/NAME (config, pid, logs, temp files), started with
-p/-c so it never touches the system's nginx. A server sidecar terminates mutual TLS on 127.0.0.1
(a free port unless --port) and forwards plaintext gRPC to --app-socket; a client sidecar listens
on --listen-socket (plaintext gRPC, HTTP/2) and originates mutual TLS to 127.0.0.1:--server-port.

  --cert FILE        certificate presented by the sidecar (PEM)
  --key KEY          its private key: a key-reference PEM from \`akv keyref\`, a "store:managedhsm:H:K"
                     URI (nginx >= 1.29), or an ordinary PEM key file
  --ca FILE          CA certificate trusted for the peer's certificate
  --server-name HOST name the server certificate must carry (default: localhost)
  --no-client-cert   client sidecar that presents no certificate (to show it is refused)
  --no-reuse         client sidecar that makes a new connection with a full TLS handshake for
                     every call (no keep-alive, no session resumption): measures the handshake
  --dir DIR          demo directory (default: \$STATE_DIR or tmp/grpc-demo in the repository)

If STATE_DIR/openssl.cnf exists (written by setup.sh / start.sh), nginx runs
with it as OPENSSL_CONF, so HSM keys work through the akv provider. Starting a sidecar that runs
with the same configuration does nothing; with a different one it is restarted.
Prints, for a server sidecar, "port=N".
EOF
}

[ $# -gt 0 ] || usage_error "missing action (start, stop or port)"
case "$1" in -h | --help) usage; exit 0 ;; esac
action=$1
shift
role=""
if [ "$action" = start ]; then
  [ $# -gt 0 ] || usage_error "start needs 'server' or 'client'"
  role=$1
  shift
  case "$role" in server | client) ;; *) usage_error "start needs 'server' or 'client', not '$role'" ;; esac
fi

name="" cert="" key="" ca="" app_socket="" port="" listen_socket="" server_port="" server_name=localhost
no_client_cert=0 all=0 reuse=1
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --name) need_value "$@"; name=$2; shift 2 ;;
    --cert) need_value "$@"; cert=$2; shift 2 ;;
    --key) need_value "$@"; key=$2; shift 2 ;;
    --ca) need_value "$@"; ca=$2; shift 2 ;;
    --app-socket) need_value "$@"; app_socket=$2; shift 2 ;;
    --port) need_value "$@"; port=$2; shift 2 ;;
    --listen-socket) need_value "$@"; listen_socket=$2; shift 2 ;;
    --server-port) need_value "$@"; server_port=$2; shift 2 ;;
    --server-name) need_value "$@"; server_name=$2; shift 2 ;;
    --no-client-cert) no_client_cert=1; shift ;;
    --no-reuse) reuse=0; shift ;;
    --all) all=1; shift ;;
    --dir) need_value "$@"; STATE_DIR=$2; shift 2 ;;
    *) usage_error "unknown option '$1'" ;;
  esac
done
finish_settings
[ "$all" = 1 ] || [[ "$name" =~ ^[a-z0-9][a-z0-9_-]{0,40}$ ]] ||
  usage_error "--name is required: lowercase letters, digits, '-' or '_'"
prefix="$STATE_DIR/nginx/$name"

# Each sidecar's nginx is the service sidecar-NAME of bin/akv dev in DEV_DIR (pid, log, stop).
sidecar_running() { akv_dev status --dir "$DEV_DIR" --name "sidecar-$(basename "$1")" >/dev/null; }

# SIGTERM (akv dev stop): nginx's fast shutdown. (QUIT would wait for the kept-alive HTTP/2
# connections between the sidecars to go idle and close, which takes seconds.)
stop_sidecar() {
  if sidecar_running "$1"; then
    akv_dev stop --dir "$DEV_DIR" --name "sidecar-$(basename "$1")" --quiet
    say "stopped sidecar $(basename "$1")"
  fi
}

case "$action" in
  stop)
    if [ "$all" = 1 ]; then
      for p in "$STATE_DIR"/nginx/*/; do [ -d "$p" ] && stop_sidecar "${p%/}"; done
    else
      stop_sidecar "$prefix"
    fi
    exit 0
    ;;
  port)
    [ -f "$prefix/sidecar.env" ] || die "no sidecar '$name' in $STATE_DIR" "start it first"
    sed -n 's/^port=//p' "$prefix/sidecar.env"
    exit 0
    ;;
  start) ;;
  *) usage_error "unknown action '$action' (start, stop or port)" ;;
esac

require_commands nginx node
need_file() { [ -n "$2" ] || usage_error "$1 is required"; [ -r "$2" ] || die "$1 $2: no such readable file"; }
abs() { printf '%s/%s' "$(cd "$(dirname "$1")" && pwd)" "$(basename "$1")"; }
need_file --ca "$ca"
ca=$(abs "$ca")
if [ "$role" = client ] && [ "$no_client_cert" = 1 ]; then
  cert="" key=""
else
  need_file --cert "$cert"
  cert=$(abs "$cert")
  [ -n "$key" ] || usage_error "--key is required"
  case "$key" in
    '"store:'* | store:*) key="\"${key//\"/}\"" ;;
    *) need_file --key "$key"; key=$(abs "$key") ;;
  esac
fi

mkdir -p "$prefix/logs" "$prefix/temp"
# The template values (examples/lib.sh render), besides PORT.
values=("PREFIX=$prefix" "USER_LINE=$(nginx_user_line)" "WORKERS=2" "CA=$ca")
mapfile -t -O "${#values[@]}" values < <(http2_template_values)
if [ "$role" = server ]; then
  [ -n "$app_socket" ] || usage_error "--app-socket is required for a server sidecar"
  if [ -z "$port" ] && sidecar_running "$prefix" && [ -f "$prefix/sidecar.env" ]; then
    port=$(sed -n 's/^port=//p' "$prefix/sidecar.env") # keep the port clients already use
  fi
  [ -z "$port" ] || [[ "$port" =~ ^[0-9]+$ ]] || usage_error "--port wants a number, got '$port'"
  user_can_use "$NGINX_USER" "$app_socket" || warn "the nginx workers ($NGINX_USER) cannot open $app_socket: calls will fail with 502"
  values+=("APP_SOCKET=$app_socket" "CERT=$cert" "KEY=$key")
  template="$EXAMPLE_DIR/nginx/server-sidecar.conf.template"
else
  [ -n "$listen_socket" ] || usage_error "--listen-socket is required for a client sidecar"
  [[ "$server_port" =~ ^[0-9]+$ ]] || usage_error "--server-port wants the server sidecar's port number"
  [ -d "$(dirname "$listen_socket")" ] || die "directory $(dirname "$listen_socket") does not exist" "create it (mode 0700: whoever reaches this socket calls as this client)"
  listen_socket=$(abs "$listen_socket")
  if [ -n "$cert" ]; then
    values+=("CLIENT_CERT_LINES=            grpc_ssl_certificate $cert;
            grpc_ssl_certificate_key $key;")
  else
    values+=("CLIENT_CERT_LINES=            # (started with --no-client-cert: presents no certificate)")
  fi
  if [ "$reuse" = 1 ]; then
    values+=("KEEPALIVE_LINE=        keepalive 8;" "SESSION_REUSE=on")
  else
    values+=("KEEPALIVE_LINE=        # (started with --no-reuse: a new connection for every call)" "SESSION_REUSE=off")
  fi
  values+=("LISTEN_SOCKET=$listen_socket" "SERVER_PORT=$server_port" "SERVER_NAME=$server_name")
  template="$EXAMPLE_DIR/nginx/client-sidecar.conf.template"
fi

nginx_env=()
[ -f "$OPENSSL_CNF" ] && nginx_env=(env "OPENSSL_CONF=$OPENSSL_CNF")

# render_conf PORT: writes the candidate configuration to $prefix/nginx.conf.new.
render_conf() {
  render "$template" "$prefix/nginx.conf.new" "${values[@]}" "PORT=$1"
}

try_port=${port:-$(free_port)}
render_conf "$try_port"
if sidecar_running "$prefix" && cmp -s "$prefix/nginx.conf.new" "$prefix/nginx.conf"; then
  rm -f "$prefix/nginx.conf.new"
  say "sidecar $name already running with this configuration"
  [ "$role" = server ] && echo "port=$try_port"
  exit 0
fi
stop_sidecar "$prefix"
[ "$role" = client ] && [ -S "$listen_socket" ] && rm -f "$listen_socket" # left by a killed nginx

# nginx in the foreground (daemon off) as a service of DEV_DIR: ready when it accepts
# connections (a server sidecar) or runs (a client sidecar, on a Unix socket).
ready=()
[ "$role" = client ] || ready=(--ready-port "$try_port")
for attempt in 1 2 3; do
  mv "$prefix/nginx.conf.new" "$prefix/nginx.conf"
  if akv_dev start --dir "$DEV_DIR" --name "sidecar-$name" "${ready[@]}" --quiet -- \
    ${nginx_env[@]+"${nginx_env[@]}"} "$(command -v nginx)" -p "$prefix" -c "$prefix/nginx.conf" \
    -e "$prefix/logs/error.log" 2>"$prefix/logs/startup.log"; then
    break
  fi
  # Another process took the port between free_port and nginx's bind: pick another one.
  if [ "$role" = server ] && [ -z "$port" ] && [ "$attempt" -lt 3 ] &&
    grep -q 'Address already in use\|already accepts connections' "$prefix/logs/startup.log"; then
    try_port=$(free_port)
    ready=(--ready-port "$try_port")
    render_conf "$try_port"
    continue
  fi
  cat "$prefix/logs/startup.log" >&2
  die "nginx did not start for sidecar '$name'" "see the lines above and $prefix/logs/error.log"
done
# A client sidecar listens once nginx has read its configuration (and loaded its key).
if [ "$role" = client ] && ! wait_until 30 test -S "$listen_socket"; then
  die "the client sidecar '$name' does not listen on $listen_socket" "see $prefix/logs/error.log and $DEV_DIR/sidecar-$name.log"
fi
printf 'role=%s\nport=%s\n' "$role" "${try_port}" >"$prefix/sidecar.env"
if [ "$role" = server ]; then
  say "server sidecar '$name' listening on 127.0.0.1:$try_port (mutual TLS) -> $app_socket"
  echo "port=$try_port"
else
  say "client sidecar '$name' listening on $listen_socket -> mutual TLS to 127.0.0.1:$server_port"
fi
