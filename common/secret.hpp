#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kortti {

// Overwrites memory in a way the optimiser may not remove.
void wipe(void* data, std::size_t size) noexcept;

// Overwrites a string's whole buffer (including spare capacity), then empties it.
template <class String>
void wipe_string(String& s) noexcept {
  wipe(s.data(), s.capacity());
  s.clear();
}

// Overwrites the stack below the caller, where a returned parser left copies of
// short strings in small-string buffers. Call it after parsing a request that
// may carry a PIN.
void scrub_stack() noexcept;

// While one lives on a thread, what that thread frees through operator
// delete is overwritten first. For what a library copies where the wiping
// allocator cannot reach: the JSON lexer keeps each token's raw text, a
// PIN's too, in a std::vector of its own, and builds its error messages
// from it. Release builds only: the sanitizers bring their own allocator,
// and theirs are test builds. Scopes nest.
class WipeFrees {
 public:
  WipeFrees() noexcept;
  ~WipeFrees();
  WipeFrees(const WipeFrees&) = delete;
  WipeFrees& operator=(const WipeFrees&) = delete;
};

// No core dump of this process from here on, and no other process of its
// uid reading its memory (ptrace, /proc/PID/mem): it holds PINs. Sanitizer
// builds stay dumpable, as LeakSanitizer ptraces its own threads.
void keep_out_of_core_dumps() noexcept;

// A PIN or other secret: kept on OpenSSL's secure heap (korttid makes it at
// start, daemon/pin_memory.hpp; without one, ordinary memory), never copied implicitly,
// wiped when destroyed. It has no operator<< and no conversion to std::string
// on purpose, so it cannot end up in a log line by accident.
class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string_view value);
  ~SecretString();

  SecretString(SecretString&& other) noexcept;
  SecretString& operator=(SecretString&& other) noexcept;
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;

  // Copies `source` into secure memory and wipes `source`, also when the
  // secure memory has no room (the copy throws).
  template <class String>
  static SecretString take(String& source) {
    struct Wipe {
      String& source;
      ~Wipe() { wipe_string(source); }
    } wipe{source};
    return SecretString(std::string_view(source.data(), source.size()));
  }

  [[nodiscard]] std::string_view view() const noexcept { return {data_, size_}; }
  [[nodiscard]] const char* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

 private:
  void release() noexcept;

  char* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace kortti
