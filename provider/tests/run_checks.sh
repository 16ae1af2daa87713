#!/bin/sh
# Runs the C unit tests twice (plain -O2 build, then AddressSanitizer + UBSan build) and prints a
# closing `N passed, N failed` over both runs. Arguments: the two test binaries.
# Run from provider/ (make check does); the golden vectors live in ../test/vectors.
vectors="${AKV_VECTORS_DIR:-../test/vectors}"
total_pass=0
total_fail=0
status=0
for bin in "$@"; do
  echo "== $bin"
  out=$(ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 "$bin" "$vectors" 2>&1)
  rc=$?
  echo "$out"
  line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  if [ -z "$line" ]; then
    echo "$bin did not finish (exit $rc)"
    total_fail=$((total_fail + 1))
    status=1
    continue
  fi
  p=$(echo "$line" | cut -d' ' -f1)
  f=$(echo "$line" | cut -d' ' -f3)
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
  [ "$rc" -eq 0 ] || status=1
done
echo "provider-c-tests: $total_pass passed, $total_fail failed"
exit $status
