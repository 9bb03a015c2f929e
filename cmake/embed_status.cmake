# Writes OUT, a C file holding DIR/index.html and DIR/status.js as byte
# arrays (dx_cli_status_html, dx_cli_status_js, and their _len): the status
# page is compiled into the command (cli/status.c), so that it is there
# wherever the command runs, from the build tree or installed.
# Usage: cmake -DDIR=web/status -DOUT=status_page.c -P embed_status.cmake
set(c "/* Generated from web/status by cmake/embed_status.cmake: do not edit. */\n#include <stddef.h>\n")
foreach(pair "dx_cli_status_html=index.html" "dx_cli_status_js=status.js")
  string(REGEX REPLACE "=.*" "" name "${pair}")
  string(REGEX REPLACE "^[^=]*=" "" file "${pair}")
  file(READ "${DIR}/${file}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(REGEX REPLACE "((0x..,){16})" "\\1\n" hex "${hex}")
  string(APPEND c "extern const unsigned char ${name}[];\nextern const size_t ${name}_len;\n"
                  "const unsigned char ${name}[] = {\n${hex}};\n"
                  "const size_t ${name}_len = sizeof ${name};\n")
endforeach()
file(WRITE "${OUT}.tmp" "${c}")
file(RENAME "${OUT}.tmp" "${OUT}")
