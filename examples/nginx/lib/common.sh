# What the scripts of examples/nginx share (sourced, not run): the settings file and every path
# derived from it, so that every script finds the same files. Messages, option parsing,
# templates and `akv dev` (the emulator, the agent and nginx as services) come from
# examples/lib.sh, shared with the other examples.
# shellcheck shell=bash
# shellcheck disable=SC2034 # the paths set here are read by the scripts that source this file

set -euo pipefail

# shellcheck source=../../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../lib.sh"
EXAMPLE_DIR="$EXAMPLES_DIR/nginx"

# The settings file: --env-file FILE (parse_common_args), else AKV_NGINX_ENV, else .env.
ENV_FILE_VARIABLE=AKV_NGINX_ENV
ENV_FILE="${AKV_NGINX_ENV:-$EXAMPLE_DIR/.env}"

# Reads the settings written by setup.sh and derives every path from them.
load_env() {
  [ -f "$ENV_FILE" ] || die "no settings file at $ENV_FILE" "run ./setup.sh first (it writes the file from .env.example)"
  read_settings "$ENV_FILE"
  local name
  for name in AKV_MODE AKV_HSM_NAME RSA_KEY_NAME EC_KEY_NAME RSA_PORT EC_PORT STATE_DIR; do
    [ -n "${!name:-}" ] || die "$ENV_FILE does not set $name" "run ./setup.sh (it fills in missing values)"
  done
  case "$AKV_MODE" in emulator | azure) ;; *) die "AKV_MODE in $ENV_FILE is '$AKV_MODE'" "set it to 'emulator' or 'azure'" ;; esac
  RSA_KEY_SIZE=${RSA_KEY_SIZE:-3072}
  EC_CURVE=${EC_CURVE:-P-256}
  CREATE_KEYS=${CREATE_KEYS:-yes}
  WORKER_PROCESSES=${WORKER_PROCESSES:-auto}
  NGINX_USER=${NGINX_USER:-www-data}

  LOG_DIR="$STATE_DIR/logs"
  # `bin/akv dev` owns DEV_DIR: the emulator and its agent (`dev up`, emulator mode), or the agent
  # alone as a service (azure mode), and nginx as a service (pid and log in DEV_DIR/nginx.*).
  DEV_DIR="$STATE_DIR/dev"
  if [ "$AKV_MODE" = emulator ]; then
    AGENT_DIR="$DEV_DIR/akv"            # owned by the agent: 0700, or 0750 with socketGroup
    AGENT_CONFIG="$DEV_DIR/akv.json"
    AGENT_LOG="$DEV_DIR/agent.log"      # the agent's output: one JSON line per private-key operation
  else
    # A real HSM: setup.sh runs the agent alone, with its own configuration.
    AGENT_DIR="$STATE_DIR/agent"        # owned by the agent: 0700, or 0750 with socketGroup
    AGENT_CONFIG="$STATE_DIR/akv.json"
    AGENT_LOG="$LOG_DIR/agent.log"      # the agent's JSON log: one line per private-key operation
  fi
  AGENT_SOCKET="$AGENT_DIR/agent.sock"
  CERT_DIR="$STATE_DIR/certs"
  OPENSSL_CNF="$STATE_DIR/openssl.cnf"
  NGINX_PREFIX="$STATE_DIR/nginx"
  NGINX_CONF="$NGINX_PREFIX/nginx.conf"
  NGINX_PID="$NGINX_PREFIX/nginx.pid"
  NGINX_ERROR_LOG="$NGINX_PREFIX/logs/error.log"
}

key_name_of() { if [ "$1" = rsa ]; then printf '%s' "$RSA_KEY_NAME"; else printf '%s' "$EC_KEY_NAME"; fi; }
port_of() { if [ "$1" = rsa ]; then printf '%s' "$RSA_PORT"; else printf '%s' "$EC_PORT"; fi; }
key_uri_of() { printf 'managedhsm:%s:%s' "$AKV_HSM_NAME" "$(key_name_of "$1")"; }
label_of() { if [ "$1" = rsa ]; then printf 'RSA'; else printf 'EC'; fi; }

# Whether the example's nginx runs (bin/akv dev status: its record in DEV_DIR names it).
nginx_running() { akv_dev status --dir "$DEV_DIR" --name nginx >/dev/null 2>&1; }

agent_running() { [ -S "$AGENT_SOCKET" ]; }

# The group nginx workers run in when started by root (the agent socket's group); empty otherwise.
# Fails when the workers could not reach STATE_DIR at all.
worker_socket_group() {
  workers_group "$NGINX_USER" "$STATE_DIR" \
    "use a STATE_DIR whose parent directories others may pass through, e.g. ./setup.sh --force --state-dir /tmp/akv-nginx"
}

require_agent() {
  agent_running || die "the akv agent is not running (socket $AGENT_SOCKET)" "run ./setup.sh"
}

# Runs the akv CLI with the example's agent configuration.
akv() { env -u AKV_LOG_FILE -u AKV_LOG_LEVEL AKV_CONFIG="$AGENT_CONFIG" AKV_AGENT_SOCKET="$AGENT_SOCKET" "$AKV_BIN" "$@"; }

# Runs openssl with the provider activated through the example's openssl.cnf.
openssl_hsm() { OPENSSL_CONF="$OPENSSL_CNF" AKV_AGENT_SOCKET="$AGENT_SOCKET" openssl "$@"; }

# Runs openssl as a plain client: the system configuration, no provider.
openssl_plain() { env -u OPENSSL_CONF -u OPENSSL_MODULES openssl "$@"; }

# The OpenSSL configuration every HSM-using process reads: `default` first, then akv_provider,
# with the agent socket as a provider parameter (nginx workers lose the environment).
write_openssl_cnf() {
  local module
  module=$(provider_module)
  render "$EXAMPLE_DIR/templates/openssl.cnf.template" "$OPENSSL_CNF" \
    "PROVIDER_MODULE=$module" "AGENT_SOCKET=$AGENT_SOCKET"
  chmod 0644 "$OPENSSL_CNF"
}
