# What the scripts of examples/grpc share (sourced, not run): settings and the paths derived from
# them, the HSM side (the emulator and agent, or the agent you run), nginx for the sidecars.
# Messages, option parsing, processes, templates and `akv dev up` come from examples/lib.sh,
# shared with the other examples. Bash.
#
# Settings, in order of precedence: command-line options, environment variables, the file
# examples/grpc/.env (copy .env.example), built-in defaults:
#   AKV_MODE        emulator (default): the scripts start the local HSM emulator and an agent
#                   (bin/akv dev up); azure: a real Managed HSM through the agent you run
#                   (AKV_CONFIG and AKV_AGENT_SOCKET set)
#   AKV_HSM_NAME    Managed HSM name (default: grpcdemo)
#   STATE_DIR       where everything the demo makes lives (default: tmp/grpc-demo in the repository)
#   KEY_TYPE        rsa | ec: which key set the sidecars use (default: rsa)
#   KEY_PREFIX      HSM key names are <prefix>-ca-<type>, <prefix>-server-<type>,
#                   <prefix>-client-<type> (default: grpc)
#   NGINX_USER      user of the nginx workers when nginx is started as root (default: www-data)
#   EMULATOR_LATENCY_MS  added to every emulator request, to imitate the network to Azure
# The same names as examples/nginx's settings where they mean the same thing.
# shellcheck shell=bash
# shellcheck disable=SC2034 # the paths set here are read by the scripts that source this file

set -euo pipefail

# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
EXAMPLE_DIR="$EXAMPLES_DIR/grpc"

reject_renamed_settings "$EXAMPLE_DIR/.env" \
  "GRPC_USE_EMULATOR=AKV_MODE=emulator|azure" "GRPC_DEMO_DIR=STATE_DIR" "GRPC_KEY_TYPE=KEY_TYPE" \
  "GRPC_KEY_PREFIX=KEY_PREFIX" "GRPC_WORKER_USER=NGINX_USER" "GRPC_EMULATOR_LATENCY_MS=EMULATOR_LATENCY_MS"
[ ! -f "$EXAMPLE_DIR/.env" ] || read_settings "$EXAMPLE_DIR/.env" --as-environment
STATE_DIR=${STATE_DIR:-$REPO_DIR/tmp/grpc-demo} # tmp/ is git- and prettier-ignored
AKV_MODE=${AKV_MODE:-emulator}
AKV_HSM_NAME=${AKV_HSM_NAME:-grpcdemo}
KEY_TYPE=${KEY_TYPE:-rsa}
KEY_PREFIX=${KEY_PREFIX:-grpc}
NGINX_USER=${NGINX_USER:-www-data}

# Call after option parsing: checks the settings and derives paths from STATE_DIR.
finish_settings() {
  case "$AKV_MODE" in emulator | azure) ;; *) die "AKV_MODE must be 'emulator' or 'azure', not '$AKV_MODE'" "set AKV_MODE=emulator (the local emulator) or AKV_MODE=azure (your agent and HSM)" ;; esac
  case "$KEY_TYPE" in rsa | ec) ;; *) usage_error "key type must be rsa or ec, not '$KEY_TYPE'" ;; esac
  [[ "$AKV_HSM_NAME" =~ ^[A-Za-z0-9-]{3,24}$ ]] ||
    die "HSM name '$AKV_HSM_NAME' is not valid" "use 3-24 letters, digits or hyphens"
  [[ "$KEY_PREFIX" =~ ^[A-Za-z0-9-]{1,100}$ ]] ||
    die "key prefix '$KEY_PREFIX' is not valid" "use letters, digits or hyphens"
  mkdir -p "$STATE_DIR" || die "cannot create $STATE_DIR" "choose another directory: --dir DIR or STATE_DIR"
  STATE_DIR=$(cd "$STATE_DIR" && pwd)
  DEV_DIR="$STATE_DIR/akv-dev"
  AKV_ENV_FILE="$STATE_DIR/akv.env"
  OPENSSL_CNF="$STATE_DIR/openssl.cnf"
  RUN_DIR="$STATE_DIR/run"
  LOG_DIR="$STATE_DIR/logs"
  SERVER_APP_SOCKET="$RUN_DIR/server/greeter.sock"
  CLIENT_SOCKET="$RUN_DIR/client/greeter.sock"
  SERVER_APP_JS="$REPO_DIR/dist/examples/grpc/src/server.js"
}

# Compiled TypeScript, the akv CLI and the provider must exist (npm run build makes them).
require_built() {
  require_commands node nginx openssl
  [ -f "$SERVER_APP_JS" ] ||
    die "the example is not compiled ($SERVER_APP_JS is missing)" "run: npm run build (in $REPO_DIR)"
  require_akv_cli
}

# The nginx workers' group when nginx is started as root, after making sure they can enter
# STATE_DIR (examples/lib.sh workers_group); empty for an ordinary user.
worker_group() {
  workers_group "$NGINX_USER" "$STATE_DIR" \
    "choose a demo directory others may pass through to (--dir /var/tmp/akv-grpc-demo), or open the parent: chmod o+x PARENT"
}

# The nginx 'user' directive: workers drop to NGINX_USER when nginx starts as root; an ordinary
# user's nginx cannot switch users, so its workers stay that user.
nginx_user_line() {
  if is_root; then printf 'user %s %s;' "$NGINX_USER" "$(worker_group)"; else printf '# (not root: workers run as %s)' "$(id -un)"; fi
}

# --- the HSM side: emulator + agent, or the agent the user runs ----------------------------

# Loads AKV_CONFIG, AKV_AGENT_SOCKET, OPENSSL_MODULES from `akv dev up` (emulator) or checks the
# user's own settings (azure), then writes STATE_DIR/openssl.cnf.
ensure_akv_env() {
  if [ "$AKV_MODE" = emulator ]; then
    local options=() group
    [ -z "${EMULATOR_LATENCY_MS:-}" ] || options=(--latency-ms "$EMULATOR_LATENCY_MS")
    # As root, nginx workers run as NGINX_USER and it is they who sign during handshakes:
    # `dev up --socket-group` opens the agent socket to their group (0660 in a 0750 directory).
    group=$(worker_group)
    [ -z "$group" ] || options+=(--socket-group "$group")
    dev_up "$DEV_DIR" "$AKV_HSM_NAME" ${options[@]+"${options[@]}"} >"$AKV_ENV_FILE"
    # shellcheck disable=SC1090
    . "$AKV_ENV_FILE"
  else
    [ -n "${AKV_AGENT_SOCKET:-}" ] ||
      die "AKV_MODE=azure but AKV_AGENT_SOCKET is not set" "start your agent (bin/akv agent --config FILE) and export AKV_CONFIG and AKV_AGENT_SOCKET"
    [ -S "$AKV_AGENT_SOCKET" ] ||
      die "no agent socket at $AKV_AGENT_SOCKET" "start the agent: bin/akv agent --config \$AKV_CONFIG"
    export AKV_AGENT_SOCKET
  fi
  check_workers_reach_agent
  PROVIDER_MODULE=$(provider_module)
  export OPENSSL_MODULES=${OPENSSL_MODULES:-$(dirname "$PROVIDER_MODULE")}
  render "$EXAMPLE_DIR/openssl/openssl.cnf.template" "$OPENSSL_CNF" \
    "PROVIDER_MODULE=$PROVIDER_MODULE" "AGENT_SOCKET=$AKV_AGENT_SOCKET"
  export OPENSSL_CONF="$OPENSSL_CNF"
}

# As root, the nginx workers (NGINX_USER) must be able to use the agent socket: `dev up
# --socket-group` sees to it on the emulator; a user's own agent needs "socketGroup" in its config.
check_workers_reach_agent() {
  user_can_use "$NGINX_USER" "$AKV_AGENT_SOCKET" && return 0
  die "the nginx workers ($NGINX_USER) cannot use the agent socket $AKV_AGENT_SOCKET" \
    "add \"socketGroup\": \"$(worker_group)\" to the agent's config and restart it (docs/configuration.md)"
}

# Reads the settings of a running emulator/agent without starting anything (stop scripts).
load_akv_env_if_any() {
  # shellcheck disable=SC1090
  [ -f "$AKV_ENV_FILE" ] && . "$AKV_ENV_FILE"
  return 0
}

# The agent's audit log: AKV_LOG_FILE, else "log.file" of AKV_CONFIG (relative to that file).
agent_log_file() {
  local file=""
  if [ -n "${AKV_LOG_FILE:-}" ]; then
    file=$AKV_LOG_FILE
  elif [ -n "${AKV_CONFIG:-}" ] && [ -f "$AKV_CONFIG" ]; then
    file=$(SRC="$AKV_CONFIG" node -e '
      const fs = require("fs"), path = require("path");
      const f = JSON.parse(fs.readFileSync(process.env.SRC, "utf8")).log?.file;
      if (f) process.stdout.write(path.resolve(path.dirname(process.env.SRC), f));')
  fi
  # `akv dev up` writes no log file into its config: its agent logs to DIR/agent.log.
  if [ -z "$file" ] && [ -f "$DEV_DIR/agent.log" ]; then file=$DEV_DIR/agent.log; fi
  printf '%s' "$file"
}

key_name() { printf '%s-%s-%s' "$KEY_PREFIX" "$1" "$2"; } # role type
key_uri() { printf 'managedhsm:%s:%s' "$AKV_HSM_NAME" "$(key_name "$1" "$2")"; }
certs_dir() { printf '%s/certs/%s' "$STATE_DIR" "$1"; }

# HTTP/2 is a listen parameter before nginx 1.25.1 and a directive ("http2 on") from then on:
# the template values LISTEN_HTTP2 and HTTP2_LINE, as render arguments.
http2_template_values() {
  if nginx_version_at_least 1.25.1; then
    printf '%s\n' "LISTEN_HTTP2=" "HTTP2_LINE=        http2 on;"
  else
    printf '%s\n' "LISTEN_HTTP2= http2" "HTTP2_LINE=        # (HTTP/2: the listen parameter above; nginx >= 1.25.1 says \"http2 on;\")"
  fi
}

# What to write after ssl_certificate_key / grpc_ssl_certificate_key for the HSM key of a role.
nginx_key_for() { # role type
  if nginx_reads_store_uris; then
    printf '"store:%s"' "$(key_uri "$1" "$2")"
  else
    printf '%s/%s.keyref.pem' "$(certs_dir "$2")" "$1"
  fi
}
