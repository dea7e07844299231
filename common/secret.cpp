#include "common/secret.hpp"

#include <malloc.h>
#include <openssl/crypto.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "common/error.hpp"
#include "common/sanitizers.hpp"

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

namespace {

thread_local int t_wipe_frees = 0;

}  // namespace

WipeFrees::WipeFrees() noexcept { ++t_wipe_frees; }
WipeFrees::~WipeFrees() { --t_wipe_frees; }

void keep_out_of_core_dumps() noexcept {
  const rlimit none{0, 0};
  setrlimit(RLIMIT_CORE, &none);
#if !KORTTI_ASAN_BUILD
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
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

#if !KORTTI_ASAN_BUILD && !KORTTI_TSAN_BUILD
// The replaceable global deallocation functions ([new.delete]), for
// WipeFrees; libstdc++'s operator new takes its memory from malloc.
void operator delete(void* p) noexcept {
  if (p != nullptr && kortti::t_wipe_frees > 0) OPENSSL_cleanse(p, malloc_usable_size(p));
  std::free(p);
}

void operator delete(void* p, std::size_t size) noexcept {
  if (p != nullptr && kortti::t_wipe_frees > 0) OPENSSL_cleanse(p, size);
  std::free(p);
}

void operator delete[](void* p) noexcept { ::operator delete(p); }
void operator delete[](void* p, std::size_t size) noexcept { ::operator delete(p, size); }
#endif
