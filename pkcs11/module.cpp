#include "pkcs11/module.hpp"

#include <p11-kit/p11-kit.h>

#include <cstdlib>

#include "pkcs11/ckr.hpp"

namespace kortti::pkcs11 {

std::string padded_string(const CK_UTF8CHAR* data, std::size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  const auto end = s.find_last_not_of(" \0", std::string::npos, 2);
  s.erase(end == std::string::npos ? 0 : end + 1);
  return s;
}

Module::Module(std::string path) : worker_("p11-module") { status_.path = std::move(path); }

std::shared_ptr<Module> Module::load(const std::string& path) {
  std::shared_ptr<Module> m(new Module(path));
  CK_FUNCTION_LIST* fn = p11_kit_module_load(path.c_str(), 0);
  if (fn == nullptr) {
    const char* why = p11_kit_message();
    m->status_.error = std::string("cannot load module: ") + (why != nullptr ? why : "unknown error");
    return m;
  }
  const CK_RV rv = p11_kit_module_initialize(fn);
  if (rv != CKR_OK) {
    m->status_.error = "C_Initialize failed: " + ckr_name(rv);
    p11_kit_module_release(fn);
    return m;
  }
  CK_INFO info{};
  if (fn->C_GetInfo(&info) == CKR_OK) {
    m->status_.description = padded_string(info.libraryDescription, sizeof info.libraryDescription);
    m->status_.manufacturer = padded_string(info.manufacturerID, sizeof info.manufacturerID);
    m->status_.library_version =
        std::to_string(info.libraryVersion.major) + "." + std::to_string(info.libraryVersion.minor);
  }
  m->fn_ = fn;
  m->initialized_ = true;
  m->status_.loaded = true;
  return m;
}

Module::~Module() { finalize(); }

void Module::finalize() noexcept {
  if (fn_ == nullptr) return;
  if (initialized_) p11_kit_module_finalize(fn_);
  p11_kit_module_release(fn_);
  fn_ = nullptr;
  initialized_ = false;
}

std::vector<SlotSnapshot> Module::scan() {
  std::vector<SlotSnapshot> out;
  if (fn_ == nullptr) return out;
  CK_ULONG count = 0;
  check(fn_->C_GetSlotList(CK_TRUE, nullptr, &count), "C_GetSlotList");
  std::vector<CK_SLOT_ID> ids(count);
  // The list may grow between the two calls when a reader is plugged in.
  CK_RV rv = fn_->C_GetSlotList(CK_TRUE, ids.data(), &count);
  if (rv == CKR_BUFFER_TOO_SMALL) {
    ids.resize(count + 4);
    count = ids.size();
    rv = fn_->C_GetSlotList(CK_TRUE, ids.data(), &count);
  }
  check(rv, "C_GetSlotList");
  ids.resize(count);
  for (CK_SLOT_ID id : ids) {
    CK_SLOT_INFO slot{};
    SlotSnapshot snap;
    snap.id = id;
    if (fn_->C_GetSlotInfo(id, &slot) != CKR_OK) continue;
    if ((slot.flags & CKF_TOKEN_PRESENT) == 0) continue;
    snap.slot_description = padded_string(slot.slotDescription, sizeof slot.slotDescription);
    // A token that vanished between the calls, or that the module cannot
    // read, is simply not there this time.
    if (fn_->C_GetTokenInfo(id, &snap.token) != CKR_OK) continue;
    if ((snap.token.flags & CKF_TOKEN_INITIALIZED) == 0) continue;
    out.push_back(snap);
  }
  return out;
}

}  // namespace kortti::pkcs11
