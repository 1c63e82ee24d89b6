# Writes the file IN as a C string constant NAME (default `front_prelude_text`) into OUT.
if(NOT DEFINED NAME)
  set(NAME front_prelude_text)
endif()
file(READ ${IN} HEX HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," BYTES "${HEX}")
get_filename_component(SOURCE_NAME ${IN} NAME)
file(WRITE ${OUT} "// Generated from ${SOURCE_NAME}; do not edit.\n"
  "extern const char ${NAME}[];\n"
  "const char ${NAME}[] = {${BYTES} 0x00};\n")
