# What the examples' scripts share (examples/nginx, examples/haproxy, examples/grpc): sourced by
# each example's own library, never run. Messages in the one form every akv tool prints, option
# parsing, settings files, ports, templates, nginx's version, and `akv dev` (the local HSM
# emulator and agent, and the services it starts and stops: pid files and waiting are its job). Each script states strict mode itself; it is repeated here so that
# nothing sourced runs without it.
# shellcheck shell=bash

set -euo pipefail

EXAMPLES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$EXAMPLES_DIR/.." && pwd)
# The akv command: this checkout's, or another one (AKV_BIN=/usr/bin/akv: the Debian package's).
AKV_BIN="${AKV_BIN:-$REPO_DIR/bin/akv}"
SCRIPT_NAME=$(basename "$0")

# --- messages ------------------------------------------------------------------------------

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

# usage_error MESSAGE: a wrong command line (exit status 2), with the way to the options.
usage_error() {
  printf "%s: error: %s; hint: run '%s --help' for the options\n" "$SCRIPT_NAME" "$1" "$SCRIPT_NAME" >&2
  exit 2
}

# --- options -------------------------------------------------------------------------------

# need_value "$@": in an option loop, the option in $1 must be followed by a non-empty value.
#   --dir) need_value "$@"; STATE_DIR=$2; shift 2 ;;
need_value() { { [ $# -ge 2 ] && [ -n "$2" ]; } || usage_error "$1 needs a value"; }

# reject_unknown_args ARG...: fails on the first argument a script did not take.
reject_unknown_args() { [ $# -eq 0 ] || usage_error "unknown option '$1'"; }

# --- settings files ------------------------------------------------------------------------

# For examples whose steps share a settings file (nginx, haproxy): the example's library sets
# ENV_FILE_VARIABLE (e.g. AKV_NGINX_ENV) and ENV_FILE (its value, else the example's .env), and
# each script passes its arguments and its help text (HELP) here. Handles -h/--help and
# --env-file FILE (made absolute, and exported in ENV_FILE_VARIABLE for the steps a script runs);
# leaves the other arguments in REST_ARGS.
parse_common_args() {
  REST_ARGS=()
  while [ $# -gt 0 ]; do
    case "$1" in
      -h | --help)
        printf '%s\n' "$HELP"
        exit 0
        ;;
      --env-file)
        need_value "$@"
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
  export "$ENV_FILE_VARIABLE=$ENV_FILE"
}

# read_settings FILE [--as-environment]: sets a shell variable for each NAME=value line of FILE
# (blank lines and '#' comments skipped, a value may be "double-quoted"). With --as-environment
# the settings are environment variables: one already set in the environment keeps its value,
# and the others are exported.
read_settings() {
  local file=$1 keep=${2:-} line key value
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in '' | '#'*) continue ;; esac
    key=${line%%=*}
    value=${line#*=}
    { [[ "$key" =~ ^[A-Z][A-Z0-9_]*$ ]] && [ "$key" != "$line" ]; } ||
      die "$file: cannot read the line '$line'" "each line must be NAME=value (see the example's .env.example)"
    if [[ "$value" == \"*\" ]]; then
      value=${value#\"}
      value=${value%\"}
    fi
    if [ "$keep" = --as-environment ]; then
      [ -n "${!key+set}" ] || export "$key=$value"
    else
      printf -v "$key" '%s' "$value"
    fi
  done <"$file"
}

# reject_renamed_settings FILE OLD=NEW...: a setting under its old name (in the environment or in
# FILE) would be ignored, silently changing what the example does: refuse it, naming the new one.
reject_renamed_settings() {
  local file=$1 pair old
  shift
  for pair in "$@"; do
    old=${pair%%=*}
    if [ -n "${!old+set}" ] || { [ -f "$file" ] && grep -q "^$old=" "$file"; }; then
      die "the setting $old was renamed" "use ${pair#*=} instead (in the environment or $file)"
    fi
  done
}

# --- commands ------------------------------------------------------------------------------

is_root() { [ "$(id -u)" -eq 0 ]; }

# require_commands COMMAND...: each must be installed (the hint names its Debian package).
require_commands() {
  local c package
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 && continue
    case "$c" in
      node) package=nodejs ;;
      gnutls-cli) package=gnutls-bin ;;
      *) package=$c ;;
    esac
    die "'$c' is not installed" "as root: apt-get install -y $package (or run npm test / npm run setup once)"
  done
}

# The akv CLI must be built (npm run build), or AKV_BIN must name an installed one.
require_akv_cli() {
  if [ "$AKV_BIN" = "$REPO_DIR/bin/akv" ]; then
    [ -f "$REPO_DIR/dist/src/cli/main.js" ] || die "the akv CLI is not built" "run 'npm run build' in $REPO_DIR"
  else
    [ -x "$AKV_BIN" ] || die "AKV_BIN=$AKV_BIN is not an executable" "unset AKV_BIN to use this checkout's bin/akv, or install akv"
  fi
}

# akv_provider.so: AKV_PROVIDER_MODULE, else the one in OPENSSL_MODULES, else the checkout's build,
# else one installed in OpenSSL's modules directory.
provider_module() {
  local dir
  if [ -n "${AKV_PROVIDER_MODULE:-}" ]; then
    printf '%s' "$AKV_PROVIDER_MODULE"
    return
  fi
  for dir in "${OPENSSL_MODULES:-}" "$REPO_DIR/provider/build" \
    "$(openssl version -m 2>/dev/null | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')"; do
    if [ -n "$dir" ] && [ -f "$dir/akv_provider.so" ]; then
      printf '%s' "$dir/akv_provider.so"
      return
    fi
  done
  die "akv_provider.so is not built" "run 'npm run build' in $REPO_DIR (or 'make -C provider')"
}

# --- the local HSM emulator and agent (akv dev up) -----------------------------------------

# dev_up DIR HSM_NAME [dev up options...]: starts the emulator and an agent for it in DIR (or
# finds them running) and prints dev up's export lines (AKV_CONFIG, AKV_AGENT_SOCKET,
# OPENSSL_MODULES, AKV_HSM_NAME). The caller's own akv settings are not passed on.
dev_up() {
  local dir=$1 hsm=$2 out
  shift 2
  out=$(env -u AKV_CONFIG -u AKV_AGENT_SOCKET -u AKV_LOG_FILE -u AKV_LOG_LEVEL \
    "$AKV_BIN" dev up --dir "$dir" --hsm-name "$hsm" --quiet "$@") ||
    die "could not start the HSM emulator and the agent (bin/akv dev up --dir $dir)" \
      "read the message above; an environment started with other settings must be stopped first: bin/akv dev down --dir $dir"
  printf '%s\n' "$out" | grep '^export '
}

# akv_dev ARGS...: bin/akv dev (start, stop, status of the example's services), without the
# caller's akv settings.
akv_dev() { env -u AKV_CONFIG -u AKV_AGENT_SOCKET -u AKV_LOG_FILE -u AKV_LOG_LEVEL "$AKV_BIN" dev "$@"; }

# dev_down DIR: stops the emulator and the agent of DIR (nothing running is fine).
dev_down() {
  env -u AKV_CONFIG -u AKV_AGENT_SOCKET "$AKV_BIN" dev down --dir "$1" --quiet >/dev/null ||
    die "bin/akv dev down --dir $1 failed" "read the message above"
}

# workers_group USER DIR [HINT]: started by root, nginx workers run as USER and sign through the
# agent socket inside DIR: DIR (ours) is opened for passing through (o+x: enter, not list), USER
# must then reach it (its parents are the user's, only checked; HINT says what to do when it
# cannot), and USER's group, printed, is the one to give the socket to. Prints nothing for an
# ordinary user, whose workers stay that user.
workers_group() {
  local user=$1 dir=$2
  local hint=${3:-"use a STATE_DIR others may pass through to (e.g. under /tmp or /var/tmp), or open the parent: chmod o+x PARENT"}
  is_root || return 0
  id "$user" >/dev/null 2>&1 ||
    die "the nginx worker user '$user' does not exist" "set NGINX_USER to the user your nginx workers run as"
  chmod o+x "$dir" || die "cannot open $dir for passing through"
  runuser -u "$user" -- test -x "$dir" 2>/dev/null ||
    die "the nginx workers ($user) cannot enter $dir: a directory above it is closed to others" "$hint"
  id -gn "$user"
}

# user_can_use USER PATH: as root, whether USER may open PATH for writing (a socket); always
# true for an ordinary user (its processes are that user).
user_can_use() {
  is_root || return 0
  runuser -u "$1" -- test -w "$2" 2>/dev/null
}

# --- ports and waiting ---------------------------------------------------------------------

# A TCP port on 127.0.0.1 that is free now (the kernel's pick).
free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

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

# --- templates -----------------------------------------------------------------------------

# render TEMPLATE OUT NAME=VALUE...: replaces every @NAME@ in TEMPLATE and writes OUT atomically.
# A placeholder left without a value is an error, never an empty string in a configuration.
render() {
  local template=$1 out=$2 text pair
  shift 2
  text=$(<"$template")
  for pair in "$@"; do
    # Quoted, so that '&' in a value is literal (bash 5.2's patsub_replacement).
    text=${text//"@${pair%%=*}@"/"${pair#*=}"}
  done
  if [[ "$text" =~ @[A-Z][A-Z0-9_]*@ ]]; then
    die "internal: $template still has ${BASH_REMATCH[0]} after rendering" "report this bug"
  fi
  printf '%s\n' "$text" >"$out.tmp.$$"
  mv -f "$out.tmp.$$" "$out"
}

# --- nginx ---------------------------------------------------------------------------------

nginx_bin() {
  if command -v nginx >/dev/null 2>&1; then
    command -v nginx
  elif [ -x /usr/sbin/nginx ]; then
    printf '/usr/sbin/nginx'
  else
    die "nginx is not installed" "as root: apt-get install -y nginx (or run npm test / npm run setup once)"
  fi
}

# "1.22.1" from `nginx -v` (which prints to stderr).
nginx_version() { "$(nginx_bin)" -v 2>&1 | sed -n 's|^nginx version: [a-zA-Z]*/\([0-9.]*\).*|\1|p'; }

# nginx_version_at_least MAJOR.MINOR.PATCH
nginx_version_at_least() {
  local v
  v=$(nginx_version)
  [ -n "$v" ] && [ "$(printf '%s\n%s\n' "$v" "$1" | sort -V | head -n1)" = "$1" ]
}

# nginx 1.29 and newer open "store:" URIs in ssl_certificate_key; older ones need a key-reference
# PEM file (bin/akv keyref).
nginx_reads_store_uris() { nginx_version_at_least 1.29.0; }
