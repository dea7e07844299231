# The warnings for our own code (errors with KORTTI_WERROR, as the project's
# scripts and CI build); third-party headers come in as SYSTEM includes.
add_library(kortti_warnings INTERFACE)
target_compile_options(kortti_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  -Wcast-align -Woverloaded-virtual -Wformat=2 -Wimplicit-fallthrough)
if(KORTTI_WERROR)
  target_compile_options(kortti_warnings INTERFACE -Werror)
endif()
# GCC 12 reports every coroutine frame of Boost 1.74's awaitable as
# "mismatched-new-delete": the frame type's class-specific operator new pairs
# with its sized operator delete, which the warning does not model. The
# warning is off for that reason only; ASan's new-delete-type-mismatch check
# still catches a real mismatch at run time.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_compile_options(kortti_warnings INTERFACE -Wno-mismatched-new-delete)
endif()
# A unity build (CI's trees: scripts/build) includes each source file into a
# batch file, so GCC takes a type in a source file's anonymous namespace for
# one in a header and warns (subobject-linkage) wherever a template holds it.
# Each source file is still included once; the warning stays on elsewhere.
if(CMAKE_UNITY_BUILD AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_compile_options(kortti_warnings INTERFACE -Wno-subobject-linkage)
endif()
