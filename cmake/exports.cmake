# Writes the linker version script of libdamc.so: the functions declared in include/damc.h
# (a declaration starts a line with its return type), under the version DAMC_<major>.<minor>;
# every other symbol (the compiler's internals, the static libraries inside) is local.
#   cmake -DIN=damc.h -DOUT=damc.map -DVERSION=0.2 -P exports.cmake
file(STRINGS ${IN} lines REGEX "^[A-Za-z].*[ *](damc_[a-z0-9_]+)\\(")
set(names "")
foreach(line ${lines})
  string(REGEX MATCH "[ *](damc_[a-z0-9_]+)\\(" m "${line}")
  list(APPEND names ${CMAKE_MATCH_1})
endforeach()
list(REMOVE_DUPLICATES names)
list(SORT names)
set(text "DAMC_${VERSION} {\n  global:\n")
foreach(n ${names})
  string(APPEND text "    ${n};\n")
endforeach()
string(APPEND text "  local: *;\n};\n")
file(WRITE ${OUT}.tmp "${text}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
