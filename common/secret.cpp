#include "common/secret.hpp"

#include <openssl/crypto.h>

#include "common/error.hpp"

#include <cstring>
#include <new>
#include <utility>

namespace kortti {

void wipe(void* data, std::size_t size) noexcept {
  if (data != nullptr && size != 0) OPENSSL_cleanse(data, size);
}

void scrub_stack() noexcept {
  constexpr std::size_t kDepth = 16 * 1024;
  char region[kDepth];
  OPENSSL_cleanse(region, sizeof region);
  asm volatile("" : : "r"(region) : "memory");
}

SecretString::SecretString(std::string_view value) : size_(value.size()) {
  // One spare byte keeps the buffer NUL-terminated for C APIs.
  data_ = static_cast<char*>(OPENSSL_secure_zalloc(size_ + 1));
  // The locked heap is full: a condition of the moment, not a bug. The PIN
  // never goes to ordinary memory instead.
  if (data_ == nullptr)
    throw Error(Errc::service_unavailable, "no locked memory is free for the PIN right now; try again shortly");
  std::memcpy(data_, value.data(), size_);
}

SecretString::~SecretString() { release(); }

SecretString::SecretString(SecretString&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecretString& SecretString::operator=(SecretString&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

// The one free not spelt with Owned (common/owned.hpp): SecretString is the
// owner, and the wipe needs the size, which a one-word deleter cannot hold.
void SecretString::release() noexcept {
  if (data_ != nullptr) OPENSSL_secure_clear_free(data_, size_ + 1);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace kortti
