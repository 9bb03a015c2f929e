#!/usr/bin/env bash
# The Debian packages (debian/): dpkg-buildpackage -us -uc -b on a copy of
# the tracked source, lintian on the result with no error, and the
# packages' contents: the shared libraries with their SONAME, headers,
# static libraries, pkg-config and CMake files in -dev, the command with
# its man page, whose own libraries resolve from the unpacked packages.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
for t in dpkg-buildpackage dh lintian; do
  command -v "$t" >/dev/null || { echo "$t is missing (make deps)" >&2; exit 1; }
done
src="$DX_TMP/src/duplex-0.1.0"
mkdir -p "$src"
# What git tracks (and what is staged or new but not ignored), nothing built.
(cd "$DX_ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$src" 2>/dev/null) ||
  { echo "FAIL: could not copy the source tree" >&2; exit 1; }
[ -f "$src/debian/control" ] || { echo "FAIL: no debian/control in the copy" >&2; exit 1; }

echo "== dpkg-buildpackage -us -uc -b"
(cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b) >"$DX_TMP/build.log" 2>&1 ||
  { grep -m8 -B2 -A6 -E "error[:]|Error [0-9]" "$DX_TMP/build.log" >&2 || tail -40 "$DX_TMP/build.log" >&2
    echo "FAIL: dpkg-buildpackage failed" >&2; exit 1; }
cd "$DX_TMP/src"
ls ./*.deb >"$DX_TMP/debs"
for p in libduplex0.1 libduplex-chat0.1 libduplex-dev duplex; do
  grep -q "/${p}_0.1.0_" "$DX_TMP/debs" || { echo "FAIL: no $p package: $(cat "$DX_TMP/debs")" >&2; exit 1; }
done
echo "ok   $(wc -l <"$DX_TMP/debs") packages: $(tr '\n' ' ' <"$DX_TMP/debs")"

echo "== lintian"
rc=0
lintian --no-tag-display-limit ./*.changes >"$DX_TMP/lintian.log" 2>&1 || rc=$?
# 0: clean, 1: tags of error severity found, 2: lintian itself failed
[ "$rc" -le 1 ] || { cat "$DX_TMP/lintian.log" >&2; echo "FAIL: lintian could not run (exit $rc)" >&2; exit 1; }
if [ "$rc" = 1 ] || grep -E '^E: ' "$DX_TMP/lintian.log"; then
  echo "FAIL: lintian errors (above)" >&2; exit 1
fi
echo "ok   no lintian error ($(grep -c '^W: ' "$DX_TMP/lintian.log" || true) warnings)"

echo "== contents"
root="$DX_TMP/root"
for d in ./*.deb; do dpkg-deb -x "$d" "$root"; done
lib=$(dirname "$(find "$root/usr/lib" -name 'libduplex.so.0.1' | head -1)")
[ -n "$lib" ] && [ -d "$lib" ] || { echo "FAIL: libduplex.so.0.1 is in no package" >&2; exit 1; }
objdump -p "$lib/libduplex.so.0.1" | grep -q 'SONAME *libduplex.so.0.1' ||
  { echo "FAIL: libduplex's SONAME is not libduplex.so.0.1" >&2; exit 1; }
for f in usr/include/duplex/duplex.h usr/include/duplex/chat.h usr/bin/duplex usr/share/man/man1/duplex.1.gz \
  "${lib#"$root"/}/libduplex.a" "${lib#"$root"/}/libduplex_chat.so.0.1" "${lib#"$root"/}/pkgconfig/duplex.pc" \
  "${lib#"$root"/}/cmake/duplex/duplexConfig.cmake"; do
  [ -e "$root/$f" ] || { echo "FAIL: $f is in no package" >&2; exit 1; }
done
echo "ok   libraries (SONAME libduplex.so.0.1), headers, static archives, pkg-config, CMake, command, man page"
out=$(LD_LIBRARY_PATH="$lib" "$root/usr/bin/duplex" --version 2>&1 || true)
[[ "$out" == *0.1* ]] || { echo "FAIL: the packaged command says: $out" >&2; exit 1; }
echo "ok   the packaged command runs: $out"
echo "package: passed"
