#!/usr/bin/env bash
# Creates the HSM keys of the gRPC example (CA, server, client; RSA and EC sets) and issues their
# certificates with the `openssl` command through the akv provider: the CA key signs the
# certificates inside the HSM, and each CSR is signed by its own HSM key.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<EOF
Usage: $SCRIPT_NAME [--dir DIR] [--hsm-name NAME] [--key-type rsa|ec|both] [--force]

For each key type (default: both), makes sure these HSM keys exist (creates the missing ones):
  $(key_name ca TYPE)      the demo CA           RSA-HSM 2048 / EC-HSM P-256
  $(key_name server TYPE)  the server sidecar's key
  $(key_name client TYPE)  the client sidecar's key
and writes to DIR/certs/TYPE/ (DIR: \$STATE_DIR, default tmp/grpc-demo in the repository):
  ca.pem                 self-signed CA certificate   (openssl req -x509 -key managedhsm:...)
  server.pem, client.pem issued by the CA             (openssl x509 -req -CAkey managedhsm:...)
  server.keyref.pem, client.keyref.pem   key references for nginx (akv keyref): no key material

Idempotent: certificates that are still valid for a day, chain to the CA and match the HSM key's
public key are kept; others are issued again. --force issues everything again.

With AKV_MODE=emulator (default) it starts the local HSM emulator and the agent
(bin/akv dev up --dir DIR/akv-dev); with AKV_MODE=azure it uses the agent named by
AKV_AGENT_SOCKET and the HSM named by --hsm-name / AKV_HSM_NAME (see README.md).
EOF
}

types="rsa ec"
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dir) need_value "$@"; STATE_DIR=$2; shift 2 ;;
    --hsm-name) need_value "$@"; AKV_HSM_NAME=$2; shift 2 ;;
    --key-type)
      case "${2:-}" in rsa | ec) types=$2 ;; both) types="rsa ec" ;; *) usage_error "--key-type wants rsa, ec or both" ;; esac
      shift 2 ;;
    --force) force=1; shift ;;
    *) usage_error "unknown option '$1'" ;;
  esac
done
finish_settings
require_built
ensure_akv_env

# ensure_key ROLE TYPE: the HSM key exists (created when missing) and has the expected type.
ensure_key() {
  local name kty shown
  name=$(key_name "$1" "$2")
  if shown=$("$AKV_BIN" key show --hsm-name "$AKV_HSM_NAME" --name "$name" 2>/dev/null); then
    kty=$(printf '%s' "$shown" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const j=JSON.parse(s);console.log((j.key&&j.key.kty)||j.kty||j.keyType||"")}catch{console.log("")}})')
    case "$2:$kty" in
      rsa:RSA* | ec:EC* | *:) say "key $name exists (${kty:-type not shown})" ;;
      *) die "HSM key $name exists but is $kty, not ${2^^}" "delete it or choose another KEY_PREFIX" ;;
    esac
    return 0
  fi
  say "creating HSM key $name"
  if [ "$2" = rsa ]; then
    "$AKV_BIN" key create --hsm-name "$AKV_HSM_NAME" --name "$name" --kty RSA-HSM --size 2048 >/dev/null
  else
    "$AKV_BIN" key create --hsm-name "$AKV_HSM_NAME" --name "$name" --kty EC-HSM --curve P-256 >/dev/null
  fi || die "could not create HSM key $name" "check the agent and the HSM: bin/akv doctor $(key_uri "$1" "$2")"
}

# The HSM key's public key (PEM), read through the provider.
hsm_public_key() {
  openssl pkey -in "$(key_uri "$1" "$2")" -pubout 2>/dev/null ||
    die "openssl cannot open $(key_uri "$1" "$2") through the akv provider" "run: bin/akv doctor $(key_uri "$1" "$2")"
}

# cert_ok CERT ROLE TYPE [PURPOSE]: the certificate is valid for another day, matches the HSM
# key, and (for a leaf) chains to ca.pem for PURPOSE.
cert_ok() {
  local cert=$1 dir
  dir=$(dirname "$cert")
  [ -s "$cert" ] || return 1
  openssl x509 -in "$cert" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  [ "$(openssl x509 -in "$cert" -noout -pubkey 2>/dev/null)" = "$(hsm_public_key "$2" "$3")" ] || return 1
  if [ $# -ge 4 ]; then
    openssl verify -CAfile "$dir/ca.pem" -purpose "$4" "$cert" >/dev/null 2>&1 || return 1
  fi
}

serial() { printf '0x%s' "$(openssl rand -hex 16)"; }

issue_ca() { # TYPE DIR
  openssl req -new -x509 -key "$(key_uri ca "$1")" -sha256 -days 365 -set_serial "$(serial)" \
    -subj "/O=akv demo/CN=akv gRPC demo CA ($1)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$2/ca.pem.new" || die "openssl could not self-sign the CA certificate with $(key_uri ca "$1")"
  mv "$2/ca.pem.new" "$2/ca.pem"
}

issue_leaf() { # ROLE TYPE DIR SUBJECT
  local role=$1 type=$2 dir=$3
  # The CSR is signed by the role's own HSM key (proof of possession), the certificate by the CA's.
  openssl req -new -key "$(key_uri "$role" "$type")" -sha256 -subj "$4" -out "$dir/$role.csr" ||
    die "openssl could not make a CSR with $(key_uri "$role" "$type")"
  openssl x509 -req -in "$dir/$role.csr" -CA "$dir/ca.pem" -CAkey "$(key_uri ca "$type")" -sha256 \
    -days 30 -set_serial "$(serial)" -extfile "$EXAMPLE_DIR/openssl/cert-extensions.cnf" \
    -extensions "${role}_ext" -out "$dir/$role.pem.new" 2>"$dir/$role.x509.log" || {
    cat "$dir/$role.x509.log" >&2
    die "openssl could not sign the $role certificate with $(key_uri ca "$type")"
  }
  mv "$dir/$role.pem.new" "$dir/$role.pem"
}

for type in $types; do
  dir=$(certs_dir "$type")
  mkdir -p "$dir"
  for role in ca server client; do ensure_key "$role" "$type"; done

  reissue_leaves=$force
  if [ "$force" = 0 ] && cert_ok "$dir/ca.pem" ca "$type"; then
    say "$type: ca.pem is valid, kept"
  else
    issue_ca "$type" "$dir"
    reissue_leaves=1
    say "$type: ca.pem issued (self-signed by $(key_uri ca "$type"))"
  fi
  for role in server client; do
    purpose=sslserver
    subject="/O=akv demo/CN=localhost"
    if [ "$role" = client ]; then purpose=sslclient subject="/O=akv demo/CN=greeter-client-$type"; fi
    if [ "$reissue_leaves" = 0 ] && cert_ok "$dir/$role.pem" "$role" "$type" "$purpose"; then
      say "$type: $role.pem is valid, kept"
    else
      issue_leaf "$role" "$type" "$dir" "$subject"
      say "$type: $role.pem issued (CSR signed by $(key_uri "$role" "$type"), certificate by $(key_uri ca "$type"))"
    fi
    if ! "$AKV_BIN" keyref "$(key_uri "$role" "$type")" --out "$dir/$role.keyref.pem" >/dev/null 2>"$dir/keyref.log"; then
      cat "$dir/keyref.log" >&2
      die "could not write the key reference $dir/$role.keyref.pem" "run: bin/akv keyref $(key_uri "$role" "$type") --out FILE"
    fi
  done
  rm -f "$dir"/*.csr "$dir"/*.x509.log "$dir/keyref.log"
done
say "certificates and key references are in $STATE_DIR/certs/"
