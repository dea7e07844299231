#pragma once

// A file descriptor's owner, the counterpart of common/owned.hpp's Owned for
// what the kernel hands out as an int.

#include <unistd.h>

#include <utility>

namespace kortti {

// A descriptor this code owns: closed when it goes, unless released.
class OwnedFd {
 public:
  explicit OwnedFd(int fd) : fd_(fd) {}
  ~OwnedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] int release() { return std::exchange(fd_, -1); }
  // Owns `fd` from now on, closing the one it held.
  void reset(int fd) {
    if (fd_ >= 0 && fd_ != fd) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace kortti
