#include "fuzz/support.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <typeinfo>

namespace kortti::fuzz {

Bytes data_file(const std::string& name) {
  const std::string path = std::string(KORTTI_FUZZ_DATA) + "/" + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "fuzz: cannot read %s\n", path.c_str());
    std::abort();
  }
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

MemoryFile::MemoryFile(const std::uint8_t* data, std::size_t size) {
  fd_ = memfd_create("kortti-fuzz", MFD_CLOEXEC);
  if (fd_ < 0) {
    std::perror("fuzz: memfd_create");
    std::abort();
  }
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd_, data + done, size - done);
    if (n <= 0) {
      std::perror("fuzz: write");
      std::abort();
    }
    done += static_cast<std::size_t>(n);
  }
  path_ = "/proc/self/fd/" + std::to_string(fd_);
}

MemoryFile::~MemoryFile() { ::close(fd_); }

void unexpected_exception(const char* target, const std::exception& e) {
  std::fprintf(stderr, "fuzz %s: unexpected exception %s: %s\n", target, typeid(e).name(), e.what());
  std::abort();
}

}  // namespace kortti::fuzz
