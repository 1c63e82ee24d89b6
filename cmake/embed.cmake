# Writes the file IN as a C string constant `front_prelude_text` into OUT.
file(READ ${IN} HEX HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," BYTES "${HEX}")
file(WRITE ${OUT} "// Generated from front/prelude.dam; do not edit.\n"
  "extern const char front_prelude_text[];\n"
  "const char front_prelude_text[] = {${BYTES} 0x00};\n")
