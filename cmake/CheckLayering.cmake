# cmake -DSOURCE_DIR=... -P CheckLayering.cmake
cmake_minimum_required(VERSION 3.25)
#
# The components' dependencies point one way (docs/architecture.md,
# Layering): each folder may include only its own headers and those of the
# folders listed for it here. Internal headers refuse to compile outside
# their folder on their own (#error); this check catches the direction.
set(allowed_common "")
set(allowed_pcsc common)
set(allowed_pkcs11 common)
set(allowed_policy common)
set(allowed_signature common)
set(allowed_pinentry common)
set(allowed_service common pkcs11 policy signature pinentry)
set(allowed_ipc common service tls pkcs11 pcsc policy signature pinentry)
set(allowed_tls common service pkcs11 policy signature pinentry)
set(allowed_scs common service pkcs11 policy signature pinentry)
set(allowed_client common)
set(allowed_webeid common client)
set(allowed_daemon common ipc tls scs service pkcs11 pcsc policy signature pinentry)
set(components common pcsc pkcs11 policy signature pinentry service tls scs ipc client webeid daemon)

set(problems "")
foreach(component ${components})
  file(GLOB files ${SOURCE_DIR}/${component}/*.cpp ${SOURCE_DIR}/${component}/*.hpp)
  foreach(file ${files})
    file(STRINGS ${file} includes REGEX "^#include \"[a-z0-9_]+/")
    foreach(line ${includes})
      string(REGEX REPLACE "^#include \"([a-z0-9_]+)/.*" "\\1" target "${line}")
      if(target STREQUAL component OR NOT target IN_LIST components)
        continue()
      endif()
      if(NOT target IN_LIST allowed_${component})
        file(RELATIVE_PATH relative ${SOURCE_DIR} ${file})
        string(APPEND problems "  ${relative}: ${line} (${component}/ may use: ${allowed_${component}})\n")
      endif()
    endforeach()
  endforeach()
endforeach()

if(problems)
  message(FATAL_ERROR "includes against the direction of the dependencies:\n${problems}")
endif()
message(STATUS "layering: every include points down")
