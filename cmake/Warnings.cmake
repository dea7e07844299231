# Warnings are errors for our own code; third-party headers come in as SYSTEM includes.
add_library(kortti_warnings INTERFACE)
target_compile_options(kortti_warnings INTERFACE
  -Wall -Wextra -Werror -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  -Wcast-align -Woverloaded-virtual -Wformat=2 -Wimplicit-fallthrough)
