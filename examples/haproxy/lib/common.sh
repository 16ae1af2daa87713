# What the scripts of examples/haproxy share (sourced, not run): the settings file and every path
# derived from it. Messages, option parsing, processes, templates and `akv dev up` come from
# examples/lib.sh, shared with the other examples; the settings have the same names as theirs
# where they mean the same thing (AKV_HSM_NAME, STATE_DIR, RSA_PORT, EC_PORT,
# EMULATOR_LATENCY_MS).
# shellcheck shell=bash
# shellcheck disable=SC2034 # the paths set here are read by the scripts that source this file

set -euo pipefail

# shellcheck source=../../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../lib.sh"
EXAMPLE_DIR="$EXAMPLES_DIR/haproxy"

# The settings file: --env-file FILE (parse_common_args), else AKV_HAPROXY_ENV, else .env.
ENV_FILE_VARIABLE=AKV_HAPROXY_ENV
ENV_FILE="${AKV_HAPROXY_ENV:-$EXAMPLE_DIR/.env}"

# Reads the settings setup.sh wrote and derives every path from them.
load_env() {
  [ -f "$ENV_FILE" ] || die "no settings file at $ENV_FILE" "run ./setup.sh first"
  read_settings "$ENV_FILE"
  local name
  for name in AKV_HSM_NAME RSA_PORT EC_PORT STATE_DIR; do
    [ -n "${!name:-}" ] || die "$ENV_FILE does not set $name" "rerun ./setup.sh --force"
  done
  EMULATOR_LATENCY_MS=${EMULATOR_LATENCY_MS:-0}
  ASYNC=${ASYNC:-on}
  NBTHREAD=${NBTHREAD:-1}
  TIMEOUT_CLIENT=${TIMEOUT_CLIENT:-30}
  PROVIDER_LOG_LEVEL=${PROVIDER_LOG_LEVEL:-debug}
  DEV_DIR="$STATE_DIR/dev"
  AGENT_SOCKET="$DEV_DIR/akv/agent.sock"
  AGENT_CONFIG="$DEV_DIR/akv.json"
  AGENT_LOG="$DEV_DIR/agent.log"
  CERT_DIR="$STATE_DIR/certs"
  LOG_DIR="$STATE_DIR/logs"
  PROVIDER_LOG="$LOG_DIR/provider.log"
  OPENSSL_CNF="$STATE_DIR/openssl.cnf"
  HAPROXY_CFG="$STATE_DIR/haproxy.cfg"
}

key_uri_of() { printf 'managedhsm:%s:%s' "$AKV_HSM_NAME" "haproxy-$1"; }
port_of() { if [ "$1" = rsa ]; then printf '%s' "$RSA_PORT"; else printf '%s' "$EC_PORT"; fi; }

# Whether the example's HAProxy runs (bin/akv dev status: its pid file in DEV_DIR names it).
haproxy_running() { akv_dev status --dir "$DEV_DIR" --name haproxy >/dev/null; }

# Runs the akv CLI against the example's agent; openssl through akv_provider; openssl without it.
akv() { env -u AKV_LOG_FILE -u AKV_LOG_LEVEL AKV_CONFIG="$AGENT_CONFIG" AKV_AGENT_SOCKET="$AGENT_SOCKET" "$AKV_BIN" "$@"; }
openssl_hsm() { OPENSSL_CONF="$OPENSSL_CNF" AKV_AGENT_SOCKET="$AGENT_SOCKET" openssl "$@"; }
openssl_plain() { env -u OPENSSL_CONF -u OPENSSL_MODULES openssl "$@"; }

write_openssl_cnf() {
  render "$EXAMPLE_DIR/templates/openssl.cnf.template" "$OPENSSL_CNF" \
    "PROVIDER_MODULE=$(provider_module)" "AGENT_SOCKET=$AGENT_SOCKET"
  chmod 0644 "$OPENSSL_CNF"
}
