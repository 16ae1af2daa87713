# Shared by the examples/grpc scripts (sourced, not run). Bash.
#
# Settings, in order of precedence: command-line options, environment variables, the file
# examples/grpc/.env (copy .env.example), built-in defaults:
#   GRPC_DEMO_DIR      where everything the demo makes lives (default: tmp/grpc-demo in the repository)
#   GRPC_USE_EMULATOR  1 = start the local HSM emulator + agent with `akv dev up` (default)
#                      0 = use the agent you run (AKV_CONFIG / AKV_AGENT_SOCKET set) and a real HSM
#   AKV_HSM_NAME       Managed HSM name (default: grpcdemo)
#   GRPC_KEY_TYPE      rsa | ec: which key set the sidecars use (default: rsa)
#   GRPC_KEY_PREFIX    HSM key names are <prefix>-ca-<type>, <prefix>-server-<type>,
#                      <prefix>-client-<type> (default: grpc)
#   GRPC_WORKER_USER   user of the nginx workers when nginx is started as root (default: www-data)
#   GRPC_EMULATOR_LATENCY_MS  added to every emulator request, to imitate the network to Azure

EXAMPLE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$EXAMPLE_DIR/../.." && pwd)
AKV="$REPO_DIR/bin/akv"
SCRIPT_NAME=$(basename "$0")

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
usage_error() {
  printf '%s: %s\nRun `%s --help` for the options.\n' "$SCRIPT_NAME" "$1" "$0" >&2
  exit 2
}

# Reads examples/grpc/.env: KEY=VALUE lines; a variable already set in the environment wins.
load_dotenv() {
  local file="$EXAMPLE_DIR/.env" line key value
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in '' | '#'*) continue ;; esac
    key=${line%%=*}
    value=${line#*=}
    value=${value%\"}
    value=${value#\"}
    [[ "$key" =~ ^[A-Z_][A-Z0-9_]*$ ]] || die "$file: cannot read line '$line'" "write KEY=VALUE lines (see .env.example)"
    [ -n "${!key+set}" ] || export "$key=$value"
  done <"$file"
}

load_dotenv
GRPC_DEMO_DIR=${GRPC_DEMO_DIR:-$REPO_DIR/tmp/grpc-demo} # tmp/ is git- and prettier-ignored
GRPC_USE_EMULATOR=${GRPC_USE_EMULATOR:-1}
AKV_HSM_NAME=${AKV_HSM_NAME:-grpcdemo}
GRPC_KEY_TYPE=${GRPC_KEY_TYPE:-rsa}
GRPC_KEY_PREFIX=${GRPC_KEY_PREFIX:-grpc}
GRPC_WORKER_USER=${GRPC_WORKER_USER:-www-data}

# Call after option parsing: checks the settings and derives paths from GRPC_DEMO_DIR.
finish_settings() {
  case "$GRPC_USE_EMULATOR" in 0 | 1) ;; *) die "GRPC_USE_EMULATOR must be 0 or 1, not '$GRPC_USE_EMULATOR'" ;; esac
  case "$GRPC_KEY_TYPE" in rsa | ec) ;; *) usage_error "key type must be rsa or ec, not '$GRPC_KEY_TYPE'" ;; esac
  [[ "$AKV_HSM_NAME" =~ ^[A-Za-z0-9-]{3,24}$ ]] ||
    die "HSM name '$AKV_HSM_NAME' is not valid" "use 3-24 letters, digits or hyphens"
  [[ "$GRPC_KEY_PREFIX" =~ ^[A-Za-z0-9-]{1,100}$ ]] ||
    die "key prefix '$GRPC_KEY_PREFIX' is not valid" "use letters, digits or hyphens"
  mkdir -p "$GRPC_DEMO_DIR" || die "cannot create $GRPC_DEMO_DIR"
  GRPC_DEMO_DIR=$(cd "$GRPC_DEMO_DIR" && pwd)
  DEV_DIR="$GRPC_DEMO_DIR/akv-dev"
  AKV_ENV_FILE="$GRPC_DEMO_DIR/akv.env"
  OPENSSL_CNF="$GRPC_DEMO_DIR/openssl.cnf"
  RUN_DIR="$GRPC_DEMO_DIR/run"
  LOG_DIR="$GRPC_DEMO_DIR/logs"
  SERVER_APP_SOCKET="$RUN_DIR/server/greeter.sock"
  CLIENT_SOCKET="$RUN_DIR/client/greeter.sock"
  SERVER_APP_PID="$GRPC_DEMO_DIR/server-app.pid"
  SERVER_APP_JS="$REPO_DIR/dist/examples/grpc/src/server.js"
}

is_root() { [ "$(id -u)" = 0 ]; }

require_commands() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 ||
      die "'$c' is not installed" "as root: apt-get install -y ${c/openssl/openssl} (or run npm test / npm run setup once)"
  done
}

# Compiled TypeScript, the akv CLI and the provider must exist (npm run build makes them).
require_built() {
  require_commands node nginx openssl perl
  [ -f "$REPO_DIR/dist/examples/grpc/src/server.js" ] ||
    die "the example is not compiled ($REPO_DIR/dist/examples/grpc/src/server.js is missing)" "run: npm run build (in $REPO_DIR)"
  [ -f "$REPO_DIR/dist/src/cli/main.js" ] || die "the akv CLI is not built" "run: npm run build (in $REPO_DIR)"
}

# The nginx workers' group when nginx is started as root (their user is GRPC_WORKER_USER).
worker_group() {
  id -gn "$GRPC_WORKER_USER" 2>/dev/null ||
    die "user '$GRPC_WORKER_USER' does not exist" "set GRPC_WORKER_USER to the user your nginx workers run as"
}

# The nginx 'user' directive: workers drop to GRPC_WORKER_USER when nginx starts as root; an
# ordinary user's nginx cannot switch users, so its workers stay that user.
nginx_user_line() {
  if is_root; then printf 'user %s %s;' "$GRPC_WORKER_USER" "$(worker_group)"; else printf '# (not root: workers run as %s)' "$(id -un)"; fi
}

# True when the nginx workers could connect to the socket PATH (always, for an ordinary user).
worker_can_reach() {
  is_root || return 0
  runuser -u "$GRPC_WORKER_USER" -- test -w "$1" 2>/dev/null
}

# As root, nginx workers (GRPC_WORKER_USER) must walk down to the sockets in GRPC_DEMO_DIR.
# The demo directory is ours to open for traversal (o+x: enter, not list); its parents are the
# user's, so they are only checked, never changed.
ensure_workers_can_enter_demo_dir() {
  is_root || return 0
  chmod o+x "$GRPC_DEMO_DIR" || die "cannot open $GRPC_DEMO_DIR for traversal"
  runuser -u "$GRPC_WORKER_USER" -- test -x "$GRPC_DEMO_DIR" 2>/dev/null ||
    die "the nginx workers ($GRPC_WORKER_USER) cannot enter $GRPC_DEMO_DIR: a parent directory is closed to others" \
      "choose a demo directory others may traverse to (--dir /var/tmp/akv-grpc-demo), or open the parent: chmod o+x PARENT"
}

# --- the HSM side: emulator + agent, or the agent the user runs ----------------------------

# Loads AKV_CONFIG, AKV_AGENT_SOCKET, OPENSSL_MODULES from `akv dev up` (emulator) or checks the
# user's own settings (real HSM), then writes GRPC_DEMO_DIR/openssl.cnf.
ensure_akv_env() {
  if [ "$GRPC_USE_EMULATOR" = 1 ]; then
    local out
    local extra=()
    [ -z "${GRPC_EMULATOR_LATENCY_MS:-}" ] || extra=(--latency-ms "$GRPC_EMULATOR_LATENCY_MS")
    # As root, nginx workers run as GRPC_WORKER_USER and it is they who sign during handshakes:
    # `dev up --socket-group` opens the agent socket to their group (0660 in a 0750 directory).
    if is_root; then
      ensure_workers_can_enter_demo_dir
      extra+=(--socket-group "$(worker_group)")
    fi
    out=$("$AKV" dev up --dir "$DEV_DIR" --hsm-name "$AKV_HSM_NAME" --quiet ${extra[@]+"${extra[@]}"}) ||
      die "could not start the HSM emulator and the agent (akv dev up --dir $DEV_DIR)" \
        "read the message above; an environment started with other settings: stop-demo.sh --dir $GRPC_DEMO_DIR first"
    printf '%s\n' "$out" | grep '^export ' >"$AKV_ENV_FILE"
    # shellcheck disable=SC1090
    . "$AKV_ENV_FILE"
  else
    [ -n "${AKV_AGENT_SOCKET:-}" ] ||
      die "GRPC_USE_EMULATOR=0 but AKV_AGENT_SOCKET is not set" "start your agent (bin/akv agent --config FILE) and export AKV_CONFIG and AKV_AGENT_SOCKET"
    [ -S "$AKV_AGENT_SOCKET" ] ||
      die "no agent socket at $AKV_AGENT_SOCKET" "start the agent: bin/akv agent --config \$AKV_CONFIG"
    export AKV_AGENT_SOCKET
  fi
  check_workers_reach_agent
  export OPENSSL_MODULES=${OPENSSL_MODULES:-$REPO_DIR/provider/build}
  PROVIDER_MODULE="$OPENSSL_MODULES/akv_provider.so"
  [ -f "$PROVIDER_MODULE" ] ||
    die "the akv provider is not built ($PROVIDER_MODULE is missing)" "run: npm run build (in $REPO_DIR)"
  R_PROVIDER_MODULE=$PROVIDER_MODULE R_AGENT_SOCKET=$AKV_AGENT_SOCKET \
    render "$EXAMPLE_DIR/openssl/openssl.cnf.template" "$OPENSSL_CNF"
  export OPENSSL_CONF="$OPENSSL_CNF"
}

# As root, the nginx workers (GRPC_WORKER_USER) must be able to use the agent socket: `dev up
# --socket-group` sees to it on the emulator; a user's own agent needs "socketGroup" in its config.
check_workers_reach_agent() {
  is_root || return 0
  worker_can_reach "$AKV_AGENT_SOCKET" && return 0
  die "the nginx workers ($GRPC_WORKER_USER) cannot use the agent socket $AKV_AGENT_SOCKET" \
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

key_name() { printf '%s-%s-%s' "$GRPC_KEY_PREFIX" "$1" "$2"; } # role type
key_uri() { printf 'managedhsm:%s:%s' "$AKV_HSM_NAME" "$(key_name "$1" "$2")"; }
certs_dir() { printf '%s/certs/%s' "$GRPC_DEMO_DIR" "$1"; }

# nginx_version_at_least MAJOR MINOR PATCH
nginx_version_at_least() {
  local v
  v=$(nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9][0-9.]*\).*|\1|p')
  [ -n "$v" ] && [ "$(printf '%s\n%s.%s.%s\n' "$v" "$1" "$2" "$3" | sort -V | head -n1)" = "$1.$2.$3" ]
}

# HTTP/2 is a listen parameter before nginx 1.25.1 and a directive ("http2 on") from then on.
http2_template_values() {
  if nginx_version_at_least 1 25 1; then
    R_LISTEN_HTTP2="" R_HTTP2_LINE="        http2 on;"
  else
    R_LISTEN_HTTP2=" http2" R_HTTP2_LINE="        # (HTTP/2: the listen parameter above; nginx >= 1.25.1 says \"http2 on;\")"
  fi
  export R_LISTEN_HTTP2 R_HTTP2_LINE
}

# nginx >= 1.29 reads "store:" URIs in ssl_certificate_key; older ones need a key-reference PEM.
nginx_reads_store_uris() { nginx_version_at_least 1 29 0; }

# What to write after ssl_certificate_key / grpc_ssl_certificate_key for the HSM key of a role.
nginx_key_for() { # role type
  if nginx_reads_store_uris; then
    printf '"store:%s"' "$(key_uri "$1" "$2")"
  else
    printf '%s/%s.keyref.pem' "$(certs_dir "$2")" "$1"
  fi
}

# --- small tools ---------------------------------------------------------------------------

# render TEMPLATE OUT: replaces every @NAME@ with the environment variable R_NAME (which must be
# set, even if empty: a forgotten placeholder is an error, not an empty string in a config).
render() {
  local tmp="$2.tmp.$$"
  perl -pe 's/\@([A-Z][A-Z0-9_]*)\@/exists $ENV{"R_$1"} ? $ENV{"R_$1"} : die "placeholder \@$1\@ has no value\n"/ge' \
    "$1" >"$tmp" || { rm -f "$tmp"; die "cannot render $1"; }
  mv "$tmp" "$2"
}

# A TCP port on 127.0.0.1 that is free now (the kernel's pick).
free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# proc_running PID: the process exists and is not a zombie (an exited daemon stays a zombie
# until init reaps it, which can take a second or two in containers).
proc_running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat:0:1}" != Z ]
}

# read_pid PIDFILE: prints the pid in PIDFILE when that process runs; fails otherwise.
read_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && proc_running "$pid" && printf '%s' "$pid"
}

# pid_matches PID WORD: the process's command line contains WORD (so a recycled pid of an
# unrelated process is never taken for ours).
pid_matches() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2"; }

# pid_alive PIDFILE WORD: the pid in PIDFILE runs and is ours.
pid_alive() {
  local pid
  pid=$(read_pid "$1") && pid_matches "$pid" "$2"
}

# stop_pid PIDFILE WORD [SIGNAL]: SIGNAL (default TERM), wait up to 5 s, then KILL; removes PIDFILE.
stop_pid() {
  local pid _
  if pid=$(read_pid "$1") && pid_matches "$pid" "$2"; then
    kill "-${3:-TERM}" "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      proc_running "$pid" || break
      sleep 0.05
    done
    if proc_running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$1"
}

# wait_for_socket PATH PIDFILE WORD: until PATH is a socket (5 s), while the process lives.
wait_for_socket() {
  local i
  for i in $(seq 100); do
    [ -S "$1" ] && return 0
    pid_alive "$2" "$3" || return 1
    sleep 0.05
  done
  return 1
}
