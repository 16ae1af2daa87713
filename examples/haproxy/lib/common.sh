# Shared by the scripts of examples/haproxy (sourced, not run): settings, paths, messages.
# shellcheck shell=bash

set -euo pipefail

EXAMPLE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$EXAMPLE_DIR/../.." && pwd)
AKV_BIN="$REPO_DIR/bin/akv"
SCRIPT_NAME=$(basename "$0")
# The settings file: --env-file FILE, else AKV_HAPROXY_ENV, else examples/haproxy/.env.
ENV_FILE="${AKV_HAPROXY_ENV:-$EXAMPLE_DIR/.env}"

say() { printf '%s: %s\n' "$SCRIPT_NAME" "$*"; }
# die MESSAGE [HINT]: what failed and what to do, on one line.
die() {
  if [ $# -gt 1 ]; then
    printf '%s: error: %s; hint: %s\n' "$SCRIPT_NAME" "$1" "$2" >&2
  else
    printf '%s: error: %s\n' "$SCRIPT_NAME" "$1" >&2
  fi
  exit 1
}

# Handles --help and --env-file; leaves the other arguments in REST_ARGS.
parse_common_args() {
  REST_ARGS=()
  while [ $# -gt 0 ]; do
    case "$1" in
      -h | --help) printf '%s\n' "$HELP"; exit 0 ;;
      --env-file)
        [ $# -ge 2 ] || die "--env-file needs a file name" "pass --env-file PATH"
        ENV_FILE=$2
        shift 2
        ;;
      *) REST_ARGS+=("$1"); shift ;;
    esac
  done
  case "$ENV_FILE" in /*) ;; *) ENV_FILE="$PWD/$ENV_FILE" ;; esac
}

need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value" "run '$SCRIPT_NAME --help'"; }

# Reads the settings setup.sh wrote and derives every path from them.
load_env() {
  [ -f "$ENV_FILE" ] || die "no settings file at $ENV_FILE" "run ./setup.sh first"
  local line key
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in '' | '#'*) continue ;; esac
    key=${line%%=*}
    [[ "$key" =~ ^[A-Z][A-Z0-9_]*$ ]] || die "$ENV_FILE: cannot read the line '$line'" "rerun ./setup.sh --force"
    printf -v "$key" '%s' "${line#*=}"
  done <"$ENV_FILE"
  local name
  for name in HSM_NAME RSA_PORT EC_PORT STATE_DIR; do
    [ -n "${!name:-}" ] || die "$ENV_FILE does not set $name" "rerun ./setup.sh --force"
  done
  ASYNC=${ASYNC:-on}
  NBTHREAD=${NBTHREAD:-1}
  PROVIDER_LOG_LEVEL=${PROVIDER_LOG_LEVEL:-debug}
  DEV_DIR="$STATE_DIR/dev"
  AGENT_SOCKET="$DEV_DIR/akv/agent.sock"
  AGENT_CONFIG="$DEV_DIR/akv.json"
  AGENT_LOG="$DEV_DIR/agent.log"
  CERT_DIR="$STATE_DIR/certs"
  LOG_DIR="$STATE_DIR/logs"
  PROVIDER_LOG="$LOG_DIR/provider.log"
  HAPROXY_LOG="$LOG_DIR/haproxy.log"
  OPENSSL_CNF="$STATE_DIR/openssl.cnf"
  HAPROXY_CFG="$STATE_DIR/haproxy.cfg"
  HAPROXY_PID="$STATE_DIR/haproxy.pid"
}

key_uri_of() { printf 'managedhsm:%s:%s' "$HSM_NAME" "haproxy-$1"; }
port_of() { if [ "$1" = rsa ]; then printf '%s' "$RSA_PORT"; else printf '%s' "$EC_PORT"; fi; }

# The provider module: the repository's build, else the one in OpenSSL's modules directory.
provider_module() {
  local built="$REPO_DIR/provider/build/akv_provider.so" dir
  if [ -f "$built" ]; then printf '%s' "$built"; return; fi
  dir=$(pkg-config --variable=modulesdir libcrypto 2>/dev/null || true)
  [ -n "$dir" ] && [ -f "$dir/akv_provider.so" ] || die "akv_provider.so is not built" "run 'npm run build' in $REPO_DIR"
  printf '%s' "$dir/akv_provider.so"
}

require_command() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed" "install it: apt-get install -y $2"
}

haproxy_pid() {
  local pid
  pid=$(cat "$HAPROXY_PID" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then printf '%s' "$pid"; fi
}

# render TEMPLATE OUT NAME=VALUE...: replaces every @NAME@, writes OUT atomically.
render() {
  local template=$1 out=$2 text pair
  shift 2
  text=$(<"$template")
  for pair in "$@"; do text=${text//@${pair%%=*}@/${pair#*=}}; done
  [[ ! "$text" =~ @[A-Z_]+@ ]] || die "internal: $template still has ${BASH_REMATCH[0]}" "report this bug"
  printf '%s\n' "$text" >"$out.tmp"
  mv -f "$out.tmp" "$out"
}

# Runs the akv CLI against the example's agent; openssl through akv_provider; openssl without it.
akv() { env -u AKV_LOG_FILE -u AKV_LOG_LEVEL AKV_CONFIG="$AGENT_CONFIG" AKV_AGENT_SOCKET="$AGENT_SOCKET" "$AKV_BIN" "$@"; }
openssl_hsm() { OPENSSL_CONF="$OPENSSL_CNF" AKV_AGENT_SOCKET="$AGENT_SOCKET" openssl "$@"; }
openssl_plain() { env -u OPENSSL_CONF -u OPENSSL_MODULES openssl "$@"; }

write_openssl_cnf() {
  render "$EXAMPLE_DIR/templates/openssl.cnf.template" "$OPENSSL_CNF" \
    "PROVIDER_MODULE=$(provider_module)" "AGENT_SOCKET=$AGENT_SOCKET"
  chmod 0644 "$OPENSSL_CNF"
}
