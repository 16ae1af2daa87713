#!/usr/bin/env bash
# Step 1 of the akv nginx example: writes the settings file (.env) from .env.example.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: setup-env.sh [--env-file FILE] [--mode emulator|azure] [--hsm-name NAME]
                    [--rsa-key NAME] [--ec-key NAME] [--state-dir DIR] [--workers N|auto]
                    [--new-ports] [--force]

Writes the example's settings (default: examples/nginx/.env) from .env.example: the HSM name, the
RSA and EC key names, two free HTTPS ports on 127.0.0.1, and whether the keys live in the local
akv emulator (default) or in a real Azure Managed HSM. Running it again keeps the values already
in the file (the options given here win); empty values are filled in.

  --env-file FILE    settings file to write (also: AKV_NGINX_ENV)
  --mode MODE        emulator (default) or azure
  --hsm-name NAME    Managed HSM name (azure: NAME.managedhsm.azure.net)
  --rsa-key NAME     RSA key name       --ec-key NAME   EC key name
  --state-dir DIR    where certificates, logs, the agent socket and nginx files go
                     (default: a new private directory under /tmp)
  --workers N        nginx worker_processes (default auto)
  --new-ports        pick new free ports even if the file has some
  --force            start again from .env.example (drops edits)"
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
set -- ${REST_ARGS[@]+"${REST_ARGS[@]}"}

declare -A OVERRIDE=()
force=no
new_ports=no
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) need_value "$@"; OVERRIDE[AKV_MODE]=$2; shift 2 ;;
    --hsm-name) need_value "$@"; OVERRIDE[AKV_HSM_NAME]=$2; shift 2 ;;
    --rsa-key) need_value "$@"; OVERRIDE[RSA_KEY_NAME]=$2; shift 2 ;;
    --ec-key) need_value "$@"; OVERRIDE[EC_KEY_NAME]=$2; shift 2 ;;
    --state-dir) need_value "$@"; OVERRIDE[STATE_DIR]=$2; shift 2 ;;
    --workers) need_value "$@"; OVERRIDE[WORKER_PROCESSES]=$2; shift 2 ;;
    --new-ports) new_ports=yes; shift ;;
    --force) force=yes; shift ;;
    *) reject_unknown_args "$1" ;;
  esac
done

example="$EXAMPLE_DIR/.env.example"
[ -f "$example" ] || die "$example is missing" "restore it from git: git checkout -- examples/nginx/.env.example"

# Values already in the settings file (kept unless --force).
declare -A CURRENT=()
if [ "$force" = no ] && [ -f "$ENV_FILE" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in '' | '#'*) continue ;; esac
    CURRENT[${line%%=*}]=${line#*=}
  done <"$ENV_FILE"
fi

validate() {
  local key=$1 value=$2
  case "$key" in
    AKV_MODE) [[ "$value" =~ ^(emulator|azure)$ ]] || die "AKV_MODE must be 'emulator' or 'azure', not '$value'" "pass --mode emulator or --mode azure" ;;
    AKV_HSM_NAME) [[ "$value" =~ ^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$ ]] || die "'$value' is not a valid HSM name" "use 3-24 letters, digits and hyphens, starting with a letter" ;;
    RSA_KEY_NAME | EC_KEY_NAME) [[ "$value" =~ ^[A-Za-z0-9-]{1,127}$ ]] || die "'$value' is not a valid key name ($key)" "use letters, digits and hyphens" ;;
    RSA_PORT | EC_PORT) [ -z "$value" ] || { [[ "$value" =~ ^[0-9]+$ ]] && [ "$value" -ge 1 ] && [ "$value" -le 65535 ]; } || die "$key must be a port number, not '$value'" "leave it empty to get a free port" ;;
    WORKER_PROCESSES) [[ "$value" =~ ^(auto|[1-9][0-9]?)$ ]] || die "WORKER_PROCESSES must be 'auto' or a number, not '$value'" "pass --workers auto" ;;
    CREATE_KEYS) [[ "$value" =~ ^(yes|no)$ ]] || die "CREATE_KEYS must be 'yes' or 'no', not '$value'" "edit $ENV_FILE" ;;
    STATE_DIR) [ -z "$value" ] || [[ "$value" = /* ]] || die "STATE_DIR must be an absolute path, not '$value'" "pass --state-dir /absolute/path" ;;
  esac
}

out=""
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    '' | '#'*) out+="$line"$'\n'; continue ;;
  esac
  key=${line%%=*}
  value=${line#*=}
  if [ -n "${OVERRIDE[$key]+set}" ]; then
    value=${OVERRIDE[$key]}
  elif [ -n "${CURRENT[$key]+set}" ]; then
    value=${CURRENT[$key]}
  fi
  case "$key" in RSA_PORT | EC_PORT) [ "$new_ports" = no ] || value="" ;; esac
  validate "$key" "$value"
  case "$key" in
    RSA_PORT | EC_PORT)
      if [ -z "$value" ]; then
        value=$(free_port)
        while [ "$key" = EC_PORT ] && [ "$value" = "${RSA_PORT_CHOSEN:-}" ]; do value=$(free_port); done
      fi
      [ "$key" = RSA_PORT ] && RSA_PORT_CHOSEN=$value
      ;;
    STATE_DIR)
      if [ -z "$value" ]; then
        value=$(mktemp -d "${TMPDIR:-/tmp}/akv-nginx.XXXXXX")
      fi
      ;;
  esac
  out+="$key=$value"$'\n'
  printf -v "NEW_$key" '%s' "$value"
done <"$example"

mkdir -p "$NEW_STATE_DIR"
# Private to the user, but traversable: nginx workers (www-data when started as root) reach the
# agent socket inside it, in a directory the agent opens to their group only.
chmod 0711 "$NEW_STATE_DIR"
touch "$NEW_STATE_DIR/.akv-nginx-state"

mkdir -p "$(dirname "$ENV_FILE")"
printf '%s' "$out" >"$ENV_FILE.tmp"
mv -f "$ENV_FILE.tmp" "$ENV_FILE"

say "wrote $ENV_FILE"
say "  mode=$NEW_AKV_MODE hsm=$NEW_AKV_HSM_NAME keys=$NEW_RSA_KEY_NAME (RSA $NEW_RSA_KEY_SIZE), $NEW_EC_KEY_NAME (EC $NEW_EC_CURVE)"
say "  ports: RSA https://localhost:$NEW_RSA_PORT  EC https://localhost:$NEW_EC_PORT"
say "  state: $NEW_STATE_DIR"
if [ "$NEW_AKV_MODE" = azure ]; then
  say "  azure: the agent uses DefaultAzureCredential (az login, managed identity, AZURE_CLIENT_ID/...) or AZURE_CLI_ACCESS_TOKEN"
fi
say "next: ./start-agent.sh"
