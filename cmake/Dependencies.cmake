# Everything comes from Debian 12 packages (scripts/install-deps lists them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(OpenSSL 3.0 REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(CLI11 REQUIRED)

pkg_check_modules(P11KIT REQUIRED IMPORTED_TARGET p11-kit-1)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)

if(KORTTI_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(KORTTI_BUILD_BENCH)
  find_package(benchmark REQUIRED)
  pkg_check_modules(LIBP11 REQUIRED IMPORTED_TARGET libp11)
endif()

# Boost 1.74 enables Asio's coroutines (awaitable) for clang only with the
# Coroutines TS header <experimental/coroutine>, which libstdc++ does not
# have; clang 14 in C++20 mode implements the standard <coroutine> that Asio
# uses for GCC. Tell Asio so (the fuzzers and Clang builds need it).
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  add_compile_definitions(BOOST_ASIO_HAS_CO_AWAIT=1)
endif()
# libstdc++ 12's <source_location> needs __builtin_source_location, which
# clang has from 15: for clang 14 a header fills in std::source_location from
# the builtins it has (pcsc/ uses it for the call site of a PC/SC error).
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 15)
  add_compile_options("SHELL:-include ${PROJECT_SOURCE_DIR}/cmake/compat/source_location.hpp")
endif()
