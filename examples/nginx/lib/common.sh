# Shared by the scripts of examples/nginx (sourced, not run): settings, paths, messages and small
# helpers, so that every script finds the same files and fails with the same kind of message.
# shellcheck shell=bash

set -euo pipefail

EXAMPLE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$EXAMPLE_DIR/../.." && pwd)
# The akv command: this checkout's, or another one (AKV_BIN=/usr/bin/akv: the Debian package's).
AKV_BIN="${AKV_BIN:-$REPO_DIR/bin/akv}"
SCRIPT_NAME=$(basename "$0")

# The settings file: --env-file FILE (parsed by parse_common_args), else AKV_NGINX_ENV, else .env.
ENV_FILE="${AKV_NGINX_ENV:-$EXAMPLE_DIR/.env}"

say() { printf '%s: %s\n' "$SCRIPT_NAME" "$*"; }
warn() { printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
# die MESSAGE [HINT]: what failed, and what to do, on one line as every akv tool prints them.
die() {
  if [ $# -gt 1 ]; then
    printf '%s: error: %s; hint: %s\n' "$SCRIPT_NAME" "$1" "$2" >&2
  else
    printf '%s: error: %s\n' "$SCRIPT_NAME" "$1" >&2
  fi
  exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Handles the options every script accepts. Sets REST_ARGS to what is left for the script.
# The caller passes its help text in HELP.
parse_common_args() {
  REST_ARGS=()
  while [ $# -gt 0 ]; do
    case "$1" in
      -h | --help)
        printf '%s\n' "$HELP"
        exit 0
        ;;
      --env-file)
        [ $# -ge 2 ] || die "--env-file needs a file name" "pass --env-file PATH"
        ENV_FILE=$2
        shift 2
        ;;
      --env-file=*)
        ENV_FILE=${1#--env-file=}
        shift
        ;;
      *)
        REST_ARGS+=("$1")
        shift
        ;;
    esac
  done
  case "$ENV_FILE" in /*) ;; *) ENV_FILE="$PWD/$ENV_FILE" ;; esac
  export AKV_NGINX_ENV="$ENV_FILE"
}

# Fails on options the script does not know (called with what parse_common_args left over).
reject_unknown_args() {
  if [ $# -gt 0 ]; then
    die "unknown option '$1'" "run '$SCRIPT_NAME --help' for the options"
  fi
}

# Reads the settings written by setup-env.sh and derives every path from them.
load_env() {
  [ -f "$ENV_FILE" ] || die "no settings file at $ENV_FILE" "run ./setup-env.sh first (it writes the file from .env.example)"
  local line key value
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in '' | '#'*) continue ;; esac
    key=${line%%=*}
    value=${line#*=}
    [[ "$key" =~ ^[A-Z][A-Z0-9_]*$ ]] || die "$ENV_FILE: cannot read the line '$line'" "each line must be NAME=value (rerun ./setup-env.sh --force to rewrite it)"
    printf -v "$key" '%s' "$value"
  done <"$ENV_FILE"
  local name
  for name in AKV_MODE AKV_HSM_NAME RSA_KEY_NAME EC_KEY_NAME RSA_PORT EC_PORT STATE_DIR; do
    [ -n "${!name:-}" ] || die "$ENV_FILE does not set $name" "run ./setup-env.sh (it fills in missing values)"
  done
  case "$AKV_MODE" in emulator | azure) ;; *) die "AKV_MODE in $ENV_FILE is '$AKV_MODE'" "set it to 'emulator' or 'azure'" ;; esac
  RSA_KEY_SIZE=${RSA_KEY_SIZE:-3072}
  EC_CURVE=${EC_CURVE:-P-256}
  CREATE_KEYS=${CREATE_KEYS:-yes}
  WORKER_PROCESSES=${WORKER_PROCESSES:-auto}
  NGINX_USER=${NGINX_USER:-www-data}

  LOG_DIR="$STATE_DIR/logs"
  RUN_DIR="$STATE_DIR/run"
  if [ "$AKV_MODE" = emulator ]; then
    # `bin/akv dev up --dir DEV_DIR` runs the emulator and the agent and owns these files.
    DEV_DIR="$STATE_DIR/dev"
    AGENT_DIR="$DEV_DIR/akv"            # owned by the agent: 0700, or 0750 with socketGroup
    AGENT_CONFIG="$DEV_DIR/akv.json"
    AGENT_LOG="$DEV_DIR/agent.log"      # the agent's output: one JSON line per private-key operation
    AGENT_PID_FILE="$DEV_DIR/agent.pid"
  else
    # A real HSM: start-agent.sh runs only an agent, with its own configuration.
    DEV_DIR=""
    AGENT_DIR="$STATE_DIR/agent"        # owned by the agent: 0700, or 0750 with socketGroup
    AGENT_CONFIG="$STATE_DIR/akv.json"
    AGENT_LOG="$LOG_DIR/agent.log"      # the agent's JSON log: one line per private-key operation
    AGENT_PID_FILE="$RUN_DIR/agent.pid"
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

# The provider module: the repository's build, else one installed in OpenSSL's modules directory.
provider_module() {
  if [ -n "${AKV_PROVIDER_MODULE:-}" ]; then
    printf '%s' "$AKV_PROVIDER_MODULE"
  elif [ -f "$REPO_DIR/provider/build/akv_provider.so" ]; then
    printf '%s' "$REPO_DIR/provider/build/akv_provider.so"
  else
    local dir
    dir=$(pkg-config --variable=modulesdir libcrypto 2>/dev/null || true)
    if [ -n "$dir" ] && [ -f "$dir/akv_provider.so" ]; then
      printf '%s' "$dir/akv_provider.so"
    else
      die "akv_provider.so is not built" "run 'npm run build' in $REPO_DIR (or 'make -C provider')"
    fi
  fi
}

require_akv_cli() {
  [ -f "$REPO_DIR/dist/src/cli/main.js" ] || die "the akv CLI is not built" "run 'npm run build' in $REPO_DIR"
}

require_command() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed" "install it: apt-get install -y $2"
}

nginx_bin() {
  if command -v nginx >/dev/null 2>&1; then
    command -v nginx
  elif [ -x /usr/sbin/nginx ]; then
    printf '/usr/sbin/nginx'
  else
    die "nginx is not installed" "install it: apt-get install -y nginx"
  fi
}

# "1.22.1" from `nginx -v` (which prints to stderr).
nginx_version() { "$(nginx_bin)" -v 2>&1 | sed -n 's|^nginx version: [a-zA-Z]*/\([0-9.]*\).*|\1|p'; }

# nginx 1.29 and newer open `store:` URIs in ssl_certificate_key; older ones need a PEM file.
nginx_supports_store() {
  local v major minor
  v=$(nginx_version)
  major=${v%%.*}
  minor=${v#*.}
  minor=${minor%%.*}
  [ -n "$major" ] && { [ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -ge 29 ]; }; }
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_from() { if [ -f "$1" ]; then tr -dc '0-9' <"$1"; fi; }

# The pid in PIDFILE when that process is alive and is one of ours (its command line names
# STATE_DIR: a pid reused by an unrelated process is never signalled); empty otherwise.
daemon_pid() {
  local pid
  pid=$(pid_from "$1")
  pid_alive "$pid" || return 0
  if [ -r "/proc/$pid/cmdline" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$STATE_DIR"; then
    return 0
  fi
  printf '%s' "$pid"
}

# wait_until SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds (status 0). Gives up
# (status 1) after SECONDS, or at once when COMMAND returns 2 ("will never succeed").
wait_until() {
  local tries=$(($1 * 10)) rc
  shift
  while true; do
    if "$@" >/dev/null 2>&1; then return 0; else rc=$?; fi
    [ "$rc" -ne 2 ] || return 1
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || return 1
    sleep 0.1
  done
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts COMMAND detached from this terminal (own session), output to LOGFILE, pid to PIDFILE.
start_daemon() {
  local pidfile=$1 logfile=$2
  shift 2
  setsid "$@" </dev/null >>"$logfile" 2>&1 &
  printf '%s\n' "$!" >"$pidfile"
}

# Sends SIGTERM to the process in PIDFILE and waits for it to exit; SIGKILL after 20 s (the agent
# lets operations in flight finish first: up to its deadline, 10 s by default, plus 5 s).
stop_daemon() {
  local pidfile=$1 pid
  pid=$(daemon_pid "$pidfile")
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until 20 bash -c "! kill -0 $pid"; then
      warn "process $pid did not stop within 20 s of SIGTERM: sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

agent_running() { [ -n "$(daemon_pid "$AGENT_PID_FILE")" ] && [ -S "$AGENT_SOCKET" ]; }

# The group nginx workers run in when started by root (the agent socket's group); empty otherwise.
# Fails when the workers could not reach STATE_DIR at all.
worker_socket_group() {
  is_root || return 0
  id "$NGINX_USER" >/dev/null 2>&1 || die "the nginx worker user '$NGINX_USER' does not exist" "set NGINX_USER in $ENV_FILE to the user nginx workers run as"
  if ! runuser -u "$NGINX_USER" -- test -x "$STATE_DIR" 2>/dev/null; then
    die "user $NGINX_USER cannot enter $STATE_DIR (nginx workers would not reach the agent socket)" \
      "use a STATE_DIR whose parent directories others may traverse, e.g. ./setup-env.sh --force --state-dir /tmp/akv-nginx"
  fi
  id -gn "$NGINX_USER"
}

require_agent() {
  agent_running || die "the akv agent is not running (socket $AGENT_SOCKET)" "run ./start-agent.sh"
}

# Runs the akv CLI with the example's agent configuration.
akv() { env -u AKV_LOG_FILE -u AKV_LOG_LEVEL AKV_CONFIG="$AGENT_CONFIG" AKV_AGENT_SOCKET="$AGENT_SOCKET" "$AKV_BIN" "$@"; }

# Runs openssl with the provider activated through the example's openssl.cnf.
openssl_hsm() { OPENSSL_CONF="$OPENSSL_CNF" AKV_AGENT_SOCKET="$AGENT_SOCKET" openssl "$@"; }

# Runs openssl as a plain client: the system configuration, no provider.
openssl_plain() { env -u OPENSSL_CONF -u OPENSSL_MODULES openssl "$@"; }

# render TEMPLATE OUT NAME=VALUE...: replaces every @NAME@ in TEMPLATE, writes OUT atomically.
render() {
  local template=$1 out=$2 text pair
  shift 2
  text=$(<"$template")
  for pair in "$@"; do
    text=${text//@${pair%%=*}@/${pair#*=}}
  done
  if [[ "$text" =~ @[A-Z_]+@ ]]; then
    die "internal: $template still has ${BASH_REMATCH[0]} after rendering" "report this bug"
  fi
  printf '%s\n' "$text" >"$out.tmp"
  mv -f "$out.tmp" "$out"
}

# The OpenSSL configuration every HSM-using process reads: `default` first, then akv_provider,
# with the agent socket as a provider parameter (nginx workers lose the environment).
write_openssl_cnf() {
  local module
  module=$(provider_module)
  render "$EXAMPLE_DIR/templates/openssl.cnf.template" "$OPENSSL_CNF" \
    "PROVIDER_MODULE=$module" "AGENT_SOCKET=$AGENT_SOCKET"
  chmod 0644 "$OPENSSL_CNF"
}
