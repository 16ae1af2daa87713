#!/usr/bin/env bash
# Step 3 of the akv nginx example: a CSR and a certificate for each HSM key, signed inside the HSM.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: generate-cert.sh [--env-file FILE] [--force]

For the RSA key and for the EC key, with 'openssl' going through akv_provider (so every signature
is made by the HSM):
  1. a key-reference PEM (bin/akv keyref) that nginx < 1.29 reads as its ssl_certificate_key
  2. a CSR signed by the HSM key: CN=localhost, SAN DNS:localhost and IP:127.0.0.1
  3. a certificate issued from that CSR and signed by the same HSM key (self-signed: clients trust
     it with --cacert / -CAfile / --x509cafile STATE_DIR/certs/rsa.crt)
Files go to STATE_DIR/certs. A certificate that already matches the HSM key is kept.

  --force   issue new certificates even when the current ones match"
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
set -- ${REST_ARGS[@]+"${REST_ARGS[@]}"}
force=no
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=yes; shift ;;
    *) reject_unknown_args "$1" ;;
  esac
done
load_env
require_akv_cli
require_commands openssl
require_agent
mkdir -p "$CERT_DIR"
chmod 0755 "$CERT_DIR"
write_openssl_cnf

# Extensions of the issued certificate (the SAN is copied from the CSR).
cat >"$CERT_DIR/cert-extensions.cnf" <<'EOF'
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, digitalSignature, keyCertSign
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
EOF

# Prints the DER public key of a PEM certificate or public key, as hex, for comparison.
pubkey_fingerprint() {
  if [ "$1" = cert ]; then
    openssl_plain x509 -in "$2" -noout -pubkey | openssl_plain pkey -pubin -outform DER | openssl_plain dgst -sha256 -r | cut -d' ' -f1
  else
    openssl_plain pkey -pubin -in "$2" -outform DER | openssl_plain dgst -sha256 -r | cut -d' ' -f1
  fi
}

issue() {
  local kind=$1 uri label
  uri=$(key_uri_of "$kind")
  label=$(label_of "$kind")
  local keyref="$CERT_DIR/$kind.keyref.pem" pub="$CERT_DIR/$kind.hsm-pub.pem"
  local csr="$CERT_DIR/$kind.csr" crt="$CERT_DIR/$kind.crt"

  akv keyref "$uri" --out "$keyref.tmp" >/dev/null 2>"$LOG_DIR/keyref.err" || { cat "$LOG_DIR/keyref.err" >&2; false; } || die "bin/akv keyref $uri failed" "see the message above; is the key in the HSM? (./start-agent.sh creates it)"
  chmod 0644 "$keyref.tmp"
  mv -f "$keyref.tmp" "$keyref"

  # The public key as the HSM has it, read through the provider (agent DESCRIBE).
  openssl_hsm pkey -in "$uri" -pubout -out "$pub.tmp" 2>"$LOG_DIR/openssl.err" || {
    cat "$LOG_DIR/openssl.err" >&2
    die "openssl could not read $uri through akv_provider" "run: $AKV_BIN doctor $uri"
  }
  mv -f "$pub.tmp" "$pub"

  if [ "$force" = no ] && [ -s "$crt" ] && openssl_plain x509 -in "$crt" -noout -checkend 86400 >/dev/null 2>&1 \
    && [ "$(pubkey_fingerprint cert "$crt")" = "$(pubkey_fingerprint pub "$pub")" ]; then
    say "$label: $crt already matches $uri (kept)"
    return
  fi

  openssl_hsm req -new -key "$uri" -sha256 \
    -subj "/O=akv nginx example/OU=$label key in HSM $AKV_HSM_NAME/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$csr" 2>"$LOG_DIR/openssl.err" || {
    cat "$LOG_DIR/openssl.err" >&2
    die "openssl req could not make a CSR with $uri" "run: $AKV_BIN doctor $uri"
  }
  openssl_plain req -in "$csr" -verify -noout >/dev/null 2>&1 || die "the CSR signed by $uri does not verify" "run: $AKV_BIN doctor $uri"
  say "$label: CSR $csr (signed by $uri, verified)"

  openssl_hsm x509 -req -in "$csr" -key "$uri" -sha256 -days 825 -set_serial "0x$(openssl_plain rand -hex 16)" \
    -copy_extensions copyall -extfile "$CERT_DIR/cert-extensions.cnf" -out "$crt.tmp" 2>"$LOG_DIR/openssl.err" || {
    cat "$LOG_DIR/openssl.err" >&2
    die "openssl x509 could not sign the certificate with $uri" "run: $AKV_BIN doctor $uri"
  }
  openssl_plain verify -CAfile "$crt.tmp" "$crt.tmp" >/dev/null 2>&1 || die "the certificate signed by $uri does not verify" "run: $AKV_BIN doctor $uri"
  [ "$(pubkey_fingerprint cert "$crt.tmp")" = "$(pubkey_fingerprint pub "$pub")" ] || die "the certificate's public key is not the HSM key's" "report this bug"
  chmod 0644 "$crt.tmp"
  mv -f "$crt.tmp" "$crt"
  say "$label: certificate $crt (signed by $uri, verified; $(openssl_plain x509 -in "$crt" -noout -enddate))"
}

issue rsa
issue ec
say "next: ./start-server.sh"
