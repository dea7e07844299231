#pragma once

// Internal to pkcs11/ (docs/architecture.md, Layering); include pkcs11/pkcs11.hpp.
#if !defined(KORTTI_COMPONENT_PKCS11) && !defined(KORTTI_WHITE_BOX)
#error "pkcs11/module.hpp is internal to pkcs11/; include pkcs11/pkcs11.hpp"
#endif

#include <p11-kit/pkcs11.h>

#include <memory>
#include <string>
#include <vector>

#include "common/worker.hpp"
#include "pkcs11/pkcs11.hpp"

namespace kortti::pkcs11 {

// What one slot with a token looked like when the module was asked.
struct SlotSnapshot {
  CK_SLOT_ID id = 0;
  std::string slot_description;
  CK_TOKEN_INFO token{};
};

// Trims the blank padding of PKCS#11's fixed-width UTF-8 fields.
std::string padded_string(const CK_UTF8CHAR* data, std::size_t size);

// One PKCS#11 module, loaded through p11-kit in managed mode: initialisation is
// reference-counted and C_CloseAllSessions only closes our own sessions.
class Module {
 public:
  // Never throws: a module that fails to load is returned with the error set.
  static std::shared_ptr<Module> load(const std::string& path);
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  [[nodiscard]] bool loaded() const noexcept { return fn_ != nullptr; }
  [[nodiscard]] const ModuleStatus& status() const noexcept { return status_; }
  [[nodiscard]] CK_FUNCTION_LIST* fn() const noexcept { return fn_; }
  [[nodiscard]] Worker& worker() noexcept { return worker_; }

  // Slots with an initialised token present. Blocking: run on worker().
  std::vector<SlotSnapshot> scan();
  // Why the last scan failed (empty: it did not), on worker(): a failure is
  // logged when it begins or changes, not at each of the scans that every
  // tokens.list asks for.
  std::string scan_failure;

  // Finalises the module. Skipped (not called) when a card call is stuck.
  void finalize() noexcept;

 private:
  explicit Module(std::string path);

  ModuleStatus status_;
  CK_FUNCTION_LIST* fn_ = nullptr;
  bool initialized_ = false;
  Worker worker_;
};

}  // namespace kortti::pkcs11
