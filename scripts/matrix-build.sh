#!/usr/bin/env bash
# Builds the version matrix (docs/compatibility.md) from Debian's source archive:
#   scripts/matrix-build.sh [TARGET...]      TARGET: openssl-3.5, haproxy-3.0, ... (default: all)
# Rules:
# - The versions come from scripts/matrix-versions.txt only; per branch the newest version whose
#   upstream tarball the archive serves is built. A branch the archive serves nothing for is
#   recorded in $AKV_MATRIX_DIR/<target>.unavailable (the matrix reports it, never as passed).
# - Apt runs with its own source list, lists and cache under $AKV_MATRIX_DIR/apt: the system's
#   apt configuration and lists are never touched, nothing is installed system-wide.
# - Every build goes to its own prefix $AKV_MATRIX_DIR/<target>; a prefix holding .akv-complete
#   for the same version is reused; anything else there is a half-finished build and is redone.
# - Builds run under nice (shared machines); progress goes to stderr, stdout stays empty.
# - One build per target at a time (flock on $AKV_MATRIX_DIR/<target>.lock); an interrupted
#   OpenSSL build resumes where make stopped.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MATRIX_DIR="${AKV_MATRIX_DIR:-$HOME/.cache/akv/matrix}"
VERSIONS="$ROOT/scripts/matrix-versions.txt"
JOBS="${AKV_MATRIX_JOBS:-2}"
APT_DIR="$MATRIX_DIR/apt"
SUITES="trixie sid experimental"
# The Debian archive the system's own apt sources name (its main archive, not -security), so the
# matrix fetches from wherever this machine is set up to; AKV_MATRIX_MIRROR overrides it.
system_mirror() {
  local uris
  uris=$(
    sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | tr ' ' '\n' || true
    sed -n 's/^deb\(-src\)\{0,1\}[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\).*/\3/p' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true
  )
  printf '%s\n' "$uris" | grep -m 1 -E '^https?://.*/debian/?$' || true
}
MIRROR="${AKV_MATRIX_MIRROR:-$(system_mirror)}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

say() { printf '[matrix %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

apt_opts=(
  -q
  -o "Dir::Etc::sourcelist=$APT_DIR/sources.list"
  -o "Dir::Etc::sourceparts=$APT_DIR/sources.list.d"
  -o "Dir::State::Lists=$APT_DIR/lists"
  -o "Dir::Cache=$APT_DIR/cache"
  -o "APT::Sandbox::User=$(id -un)"
)

# The deb-src index of trixie, sid and experimental, refreshed when older than a day.
update_index() {
  mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/sources.list.d" "$APT_DIR/cache/archives/partial"
  local list="$APT_DIR/sources.list" suite
  [ -n "$MIRROR" ] || die "no Debian archive in /etc/apt/sources.list or /etc/apt/sources.list.d: set AKV_MATRIX_MIRROR to one"
  : >"$list.$$"
  for suite in $SUITES; do
    echo "deb-src [signed-by=$KEYRING] $MIRROR $suite main" >>"$list.$$"
  done
  mv "$list.$$" "$list"
  local stamp="$APT_DIR/lists/.akv-updated"
  if [[ -f "$stamp" && -n "$(find "$stamp" -mmin -1440 2>/dev/null)" ]]; then
    return
  fi
  say "apt-get update (deb-src $SUITES, lists in $APT_DIR/lists)"
  apt-get "${apt_opts[@]}" update >&2 || die "apt-get update of the deb-src lists failed (network to $MIRROR?)"
  touch "$stamp"
}

# orig_tarball DIR PACKAGE UPSTREAM: the upstream tarball in DIR, if there.
orig_tarball() {
  local f
  for f in "$1/$2_$3.orig.tar."{gz,xz,bz2}; do
    if [[ -f "$f" ]]; then
      echo "$f"
      return 0
    fi
  done
}

# fetch_source PACKAGE VERSION...: the upstream tarball of the first VERSION the archive serves.
# Prints its path; returns 1 when none downloads. Debian's packaging files are not needed (the
# upstream sources are built), so a version whose .dsc or debian.tar is gone still counts.
fetch_source() {
  local pkg="$1" version upstream dir tarball
  shift
  for version in "$@"; do
    upstream="${version%-*}"
    dir="$MATRIX_DIR/sources/$pkg-$version"
    tarball="$(orig_tarball "$dir" "$pkg" "$upstream")"
    if [[ -z "$tarball" ]]; then
      update_index
      mkdir -p "$dir"
      say "downloading $pkg=$version"
      (cd "$dir" && apt-get "${apt_opts[@]}" source --download-only "$pkg=$version" >"$dir/apt.log" 2>&1) || true
      tarball="$(orig_tarball "$dir" "$pkg" "$upstream")"
    fi
    if [[ -n "$tarball" ]]; then
      echo "$version $tarball"
      return 0
    fi
    say "$pkg=$version: not available from the archive ($(grep -m1 -o '[0-9]\{3\} *Not Found' "$dir/apt.log" 2>/dev/null || echo 'download failed'); see $dir/apt.log)"
  done
  return 1
}

# unpack TARBALL DIR: extracts into DIR (emptied first); prints the top directory.
unpack() {
  rm -rf "$2"
  mkdir -p "$2"
  tar -xf "$1" -C "$2"
  local top
  top="$(find "$2" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
  [[ -n "$top" ]] || die "$1 unpacked to nothing"
  echo "$top"
}

complete_marker() { echo "$1/.akv-complete"; }

# reuse PREFIX VERSION: true when PREFIX holds a finished build of VERSION.
reuse() {
  local marker
  marker="$(complete_marker "$1")"
  if [[ -f "$marker" ]] && grep -qx "version=$2" "$marker"; then
    say "$(basename "$1"): reusing the build of $2 in $1"
    return 0
  fi
  if [[ -e "$1" ]]; then
    say "$(basename "$1"): $1 holds an unfinished or other build; rebuilding"
    rm -rf "$1"
  fi
  return 1
}

# finish PREFIX VERSION STARTED [CPU_SECONDS]: marks PREFIX complete with its build times.
finish() {
  local prefix="$1" version="$2" started="$3" cpu="${4:-}" secs
  secs=$(($(date +%s) - started))
  printf 'version=%s\nbuilt=%s\nseconds=%s\n%s' "$version" "$(date -u +%FT%TZ)" "$secs" \
    "${cpu:+cpu_seconds=$cpu$'\n'}" >"$(complete_marker "$prefix")"
  say "$(basename "$prefix"): built $version in $((secs / 60)) min $((secs % 60)) s${cpu:+ ($cpu CPU seconds)}"
}

build_openssl() {
  local branch="$1" version="$2" tarball="$3"
  local prefix="$MATRIX_DIR/openssl-$branch" upstream="${version%-*}"
  reuse "$prefix" "$upstream" && return 0
  local started src bdir="$MATRIX_DIR/build/openssl-$branch" log="$MATRIX_DIR/build/openssl-$branch.log"
  started=$(date +%s)
  src="$(find "$bdir" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -n 1 || true)"
  if [[ -n "$src" && -f "$bdir/.configured" ]] && grep -qx "$upstream" "$bdir/.configured"; then
    # An interrupted build of the same version: make carries on where it stopped.
    say "openssl-$branch: resuming the interrupted build in $bdir"
  else
    src="$(unpack "$tarball" "$bdir")"
  fi
  local opts=(--prefix="$prefix" --openssldir="$prefix/ssl" --libdir=lib shared no-tests
    "-Wl,-rpath,$prefix/lib")
  # Parts the provider and its tests never touch are left out to keep a from-scratch matrix build
  # inside CI's budget (docs/compatibility.md): old and national ciphers, QUIC, CMP, TS, SRP, GOST,
  # binary curves, the legacy provider. TLS 1.2/1.3, RSA/EC/X25519/ML-KEM, X.509, CMS, OCSP and
  # the engine API stay. Each option is passed only when this version's Configure knows it.
  local trim=(docs legacy quic cmp ts srp gost ec2m sm2 sm3 sm4 idea seed camellia aria bf cast
    rc2 rc4 rc5 md4 mdc2 whirlpool rmd160 siv ocb scrypt argon2 slh-dsa lms sctp srtp ssl3 dtls)
  local option
  for option in "${trim[@]}"; do
    if grep -q "\"$option\"" "$src/Configure"; then opts+=("no-$option"); fi
  done
  if [[ ! -f "$bdir/.configured" ]]; then
    say "openssl-$branch: configuring $upstream (${opts[*]})"
    (cd "$src" && nice -n 10 ./Configure "${opts[@]}") >"$log" 2>&1 ||
      die "openssl-$branch: Configure failed, see $log"
    echo "$upstream" >"$bdir/.configured"
  fi
  # Shared libraries and the openssl command only: the static libcrypto.a/libssl.a would compile
  # every library file a second time (3.5+ builds separate objects for each), and no engine or
  # loadable module of OpenSSL's own is used.
  local libs lean
  libs="$(sed -n '/^LIBS=/,/[^\\]$/p' "$src/Makefile" | tr -d '\\\n' | sed 's/^LIBS=//')"
  libs="$(tr -s '[:blank:]' '\n' <<<"$libs" | grep -v -x -e libcrypto.a -e libssl.a -e '' | tr '\n' ' ')"
  lean=("LIBS=$libs" INSTALL_LIBS= MODULES= INSTALL_ENGINES= INSTALL_MODULES=)
  say "openssl-$branch: compiling (make -j$JOBS build_sw ${lean[*]}, log in $log)"
  # The CPU time (user + system of every compiler) is what a machine of its own needs, whatever
  # the load here: CPU seconds / cores is the build's time on an idle machine.
  local cpu
  (cd "$src" && nice -n 10 make -j"$JOBS" "${lean[@]}" build_sw &&
    make "${lean[@]}" install_sw install_ssldirs && times >"$bdir/.cpu-times") >>"$log" 2>&1 ||
    die "openssl-$branch: build failed, see $log"
  # `times`, second line: the children's user and system time, as 12m3.456s.
  cpu="$(awk 'NR == 2 {for (i = 1; i <= 2; i++) {split($i, t, /[ms]/); s += t[1] * 60 + t[2]}} END {printf "%d", s}' \
    "$bdir/.cpu-times")"
  "$prefix/bin/openssl" version >&2 || die "openssl-$branch: the built openssl does not run"
  rm -rf "$bdir"
  finish "$prefix" "$upstream" "$started" "$cpu"
}

# HAProxy against OpenSSL 3.5 (the LTS Debian 13 ships it with).
build_haproxy() {
  local branch="$1" version="$2" tarball="$3"
  local prefix="$MATRIX_DIR/haproxy-$branch" upstream="${version%-*}" ssl="$MATRIX_DIR/openssl-3.5"
  reuse "$prefix" "$upstream" && return 0
  [[ -f "$(complete_marker "$ssl")" ]] || die "haproxy-$branch needs openssl-3.5 built first"
  local started src log="$MATRIX_DIR/build/haproxy-$branch.log"
  started=$(date +%s)
  src="$(unpack "$tarball" "$MATRIX_DIR/build/haproxy-$branch")"
  say "haproxy-$branch: compiling $upstream against $ssl (log in $log)"
  (cd "$src" && nice -n 10 make -j"$JOBS" TARGET=linux-glibc USE_OPENSSL=1 \
    SSL_INC="$ssl/include" SSL_LIB="$ssl/lib" ADDLIB="-Wl,-rpath,$ssl/lib" &&
    make install-bin PREFIX="$prefix") >"$log" 2>&1 || die "haproxy-$branch: build failed, see $log"
  "$prefix/sbin/haproxy" -vv 2>&1 | grep -i -m1 'running on: OpenSSL' >&2 || true
  rm -rf "$MATRIX_DIR/build/haproxy-$branch"
  finish "$prefix" "$upstream" "$started"
}

# nginx with the ssl and stream modules against OpenSSL 3.5 (no PCRE/zlib modules: not needed).
build_nginx() {
  local branch="$1" version="$2" tarball="$3"
  local prefix="$MATRIX_DIR/nginx-$branch" upstream="${version%-*}" ssl="$MATRIX_DIR/openssl-3.5"
  reuse "$prefix" "$upstream" && return 0
  [[ -f "$(complete_marker "$ssl")" ]] || die "nginx-$branch needs openssl-3.5 built first"
  local started src log="$MATRIX_DIR/build/nginx-$branch.log"
  started=$(date +%s)
  src="$(unpack "$tarball" "$MATRIX_DIR/build/nginx-$branch")"
  say "nginx-$branch: compiling $upstream against $ssl (log in $log)"
  (cd "$src" && nice -n 10 ./configure --prefix="$prefix" --with-http_ssl_module --with-stream \
    --with-stream_ssl_module --without-http_rewrite_module --without-http_gzip_module \
    --with-cc-opt="-I$ssl/include" --with-ld-opt="-L$ssl/lib -Wl,-rpath,$ssl/lib" &&
    nice -n 10 make -j"$JOBS" && make install) >"$log" 2>&1 || die "nginx-$branch: build failed, see $log"
  rm -rf "$MATRIX_DIR/build/nginx-$branch"
  finish "$prefix" "$upstream" "$started"
}

main() {
  mkdir -p "$MATRIX_DIR/build"
  local wanted=" $* " total_start
  total_start=$(date +%s)
  local component branch versions target got version tarball
  # OpenSSL first: HAProxy and nginx build against openssl-3.5.
  for pass in openssl other; do
    while read -r component branch versions; do
      [[ -z "$component" || "$component" == \#* ]] && continue
      if [[ "$pass" == openssl && "$component" != openssl ]]; then continue; fi
      if [[ "$pass" == other && "$component" == openssl ]]; then continue; fi
      target="$component-$branch"
      if [[ "$wanted" != "  " && "$wanted" != *" $target "* ]]; then continue; fi
      # One build of a target at a time (a second run waits instead of deleting the first's
      # "unfinished" prefix); different targets may build side by side.
      exec 9>"$MATRIX_DIR/$target.lock"
      if ! flock -n 9; then
        say "$target: another run is building it ($MATRIX_DIR/$target.lock); waiting"
        flock 9
      fi
      # shellcheck disable=SC2086
      if ! got="$(fetch_source "$component" $versions)"; then
        echo "none of $versions of $component is served by $MIRROR ($SUITES)" >"$MATRIX_DIR/$target.unavailable"
        say "$target: not available from the archive (tried $versions)"
        continue
      fi
      rm -f "$MATRIX_DIR/$target.unavailable"
      version="${got%% *}"
      tarball="${got#* }"
      "build_$component" "$branch" "$version" "$tarball"
      exec 9>&-
    done <"$VERSIONS"
  done
  local secs=$(($(date +%s) - total_start))
  say "matrix builds ready in $MATRIX_DIR ($((secs / 60)) min $((secs % 60)) s this run)"
}

main "$@"
