#!/usr/bin/env bash
# duplex as a library someone else builds against (docs/embedding.md):
# 1. this build installed into a temporary prefix; two consumer projects
#    outside the tree (tests/interop/consumer: one CMake with
#    find_package(duplex COMPONENTS chat cluster), one plain Makefile with
#    pkg-config), each linking shared and static, with and without the
#    chat, each running an echo round trip; every installed header
#    compiled as C++17;
# 2. a core-only build (-DDUPLEX_CHAT=OFF -DDUPLEX_CLUSTER=OFF) from this
#    source tree, proven never to include a hiredis, libpq, jansson or
#    SQLite header nor to link those libraries, whose command says how it
#    was built when asked for --chat or --redis.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
BUILD=$(cd "$(dirname "$DUPLEX")" && pwd)
prefix="$DX_TMP/prefix"
sanflags=""
if grep -q '^DUPLEX_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt"; then
  sanflags="-fsanitize=address,undefined"
fi

echo "== install"
cmake --install "$BUILD" --prefix "$prefix" >"$DX_TMP/install.log" ||
  { cat "$DX_TMP/install.log" >&2; exit 1; }
for f in include/duplex/duplex.h include/duplex/chat.h lib/libduplex.a lib/libduplex_chat.a \
  lib/pkgconfig/duplex.pc lib/pkgconfig/duplex-chat.pc lib/cmake/duplex/duplexConfig.cmake; do
  [ -e "$prefix/$f" ] || { echo "FAIL: $f is not installed" >&2; ls -R "$prefix" >&2; exit 1; }
done
so=$(readlink "$prefix/lib/libduplex.so")
[[ "$so" == libduplex.so.0.* ]] || { echo "FAIL: libduplex.so points at '$so', not the 0.MINOR soname" >&2; exit 1; }
echo "ok   installed: headers, libduplex and libduplex_chat (static, shared: $so), pkg-config, CMake package"

run() { # run NAME PROGRAM : the program's echo round trip
  local out
  out=$(LD_LIBRARY_PATH="$prefix/lib" timeout 20 "$2" 2>&1) ||
    { echo "FAIL: $1: $out" >&2; exit 1; }
  [ "$out" = "echo ok" ] || { echo "FAIL: $1 printed: $out" >&2; exit 1; }
  echo "ok   $1: echo round trip"
}

echo "== a CMake project: find_package(duplex COMPONENTS chat cluster)"
cp -r "$here/consumer" "$DX_TMP/cm"
cmake -S "$DX_TMP/cm" -B "$DX_TMP/cm/b" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_FLAGS="$sanflags" \
  >"$DX_TMP/cm.log" 2>&1 || { cat "$DX_TMP/cm.log" >&2; exit 1; }
cmake --build "$DX_TMP/cm/b" -j 2 >>"$DX_TMP/cm.log" 2>&1 || { cat "$DX_TMP/cm.log" >&2; exit 1; }
for p in echo_shared echo_static chat_shared chat_static; do run "cmake $p" "$DX_TMP/cm/b/$p"; done
# (ldd into files: grep -q would end the pipe early, and pipefail with it)
ldd "$DX_TMP/cm/b/echo_shared" >"$DX_TMP/ldd.shared"
ldd "$DX_TMP/cm/b/echo_static" >"$DX_TMP/ldd.static"
grep -q "libduplex.so.0" "$DX_TMP/ldd.shared" ||
  { echo "FAIL: echo_shared does not use the shared library" >&2; exit 1; }
if grep -q "libduplex" "$DX_TMP/ldd.static"; then
  echo "FAIL: echo_static depends on a shared libduplex" >&2; exit 1
fi
echo "ok   the shared ones load libduplex.so.0.*, the static ones none"
cat >"$DX_TMP/cm/missing.cmake" <<'EOS'
find_package(duplex REQUIRED COMPONENTS nonsense)
EOS
if cmake -DCMAKE_PREFIX_PATH="$prefix" -P "$DX_TMP/cm/missing.cmake" >/dev/null 2>&1; then
  echo "FAIL: an unknown component was found" >&2; exit 1
fi
echo "ok   an unknown component is refused"

echo "== a Makefile project: pkg-config"
cp -r "$here/consumer" "$DX_TMP/mk"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" make -C "$DX_TMP/mk" CFLAGS="-std=c17 -Wall -Werror $sanflags" \
  >"$DX_TMP/mk.log" 2>&1 || { cat "$DX_TMP/mk.log" >&2; exit 1; }
for p in echo_shared echo_static chat_shared; do run "make $p" "$DX_TMP/mk/$p"; done

echo "== a C++ program: every installed header, as C++17"
# Each header's extern "C" block must open and close (tls.h and url.h
# once closed it at once and left a stray brace: no C++ program compiled).
{
  for h in "$prefix"/include/duplex/*.h; do echo "#include <duplex/$(basename "$h")>"; done
  echo 'int main() { return dx_tls_why() == nullptr; }'
} >"$DX_TMP/all.cpp"
c++ -std=c++17 -Wall -Wextra -Werror -pedantic -I"$prefix/include" -c "$DX_TMP/all.cpp" \
  -o "$DX_TMP/all.o" || { echo "FAIL: the installed headers do not compile as C++ (above)" >&2; exit 1; }
echo "ok   $(ls "$prefix"/include/duplex/*.h | wc -l) headers compile as C++17"

echo "== core only: -DDUPLEX_CHAT=OFF -DDUPLEX_CLUSTER=OFF"
core="$DX_TMP/core"
cmake -S "$DX_ROOT" -B "$core" -DDUPLEX_CHAT=OFF -DDUPLEX_CLUSTER=OFF -DCMAKE_BUILD_TYPE=Debug \
  >"$DX_TMP/core.log" 2>&1 || { cat "$DX_TMP/core.log" >&2; exit 1; }
cmake --build "$core" -j 2 --target duplex_shared duplex >>"$DX_TMP/core.log" 2>&1 ||
  { tail -30 "$DX_TMP/core.log" >&2; exit 1; }
find "$core" \( -name 'compiler_depend.make' -o -name '*.d' \) -exec cat {} + >"$DX_TMP/deps.core"
grep -q 'duplex/server.h' "$DX_TMP/deps.core" ||
  { echo "FAIL: no dependency files to check in $core" >&2; exit 1; }
if grep -E 'hiredis|libpq-fe|jansson|sqlite3\.h' "$DX_TMP/deps.core"; then
  echo "FAIL: the core-only build included a header it must not need (above)" >&2; exit 1
fi
ldd "$core/libduplex.so" "$core/duplex" >"$DX_TMP/ldd.core"
if grep -E 'hiredis|libpq|jansson|sqlite' "$DX_TMP/ldd.core"; then
  echo "FAIL: the core-only build links a library it must not need (above)" >&2; exit 1
fi
echo "ok   no hiredis, libpq, jansson or SQLite header included, none linked"
msg=$("$core/duplex" serve --chat 2>&1 || true)
[[ "$msg" == *"built without the chat"* ]] || { echo "FAIL: serve --chat said: $msg" >&2; exit 1; }
msg=$("$core/duplex" serve --echo --redis redis://127.0.0.1 2>&1 || true)
[[ "$msg" == *"without cluster support"* ]] || { echo "FAIL: serve --redis said: $msg" >&2; exit 1; }
echo "ok   its command says how it was built: $msg"
echo "install: passed"
