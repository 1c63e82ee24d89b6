# Writes the usage sketch at the top of include/damc.h (the lines " *   ...") to OUT, so that
# a test compiles and runs exactly what the header shows.
file(STRINGS ${IN} lines)
set(code "")
foreach(line IN LISTS lines)
  if(line MATCHES "^ \\*   (.*)$")
    string(APPEND code "${CMAKE_MATCH_1}\n")
  endif()
  if(line MATCHES "^ \\*/")
    break()
  endif()
endforeach()
file(WRITE ${OUT} "${code}")
