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
