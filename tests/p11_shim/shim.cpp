// A test double, named as such: a PKCS#11 module that forwards every call
// to SoftHSM2 and changes only what a real module cannot be made to do on
// demand. Each change is switched on by an environment variable of the
// process that loads it (korttid in the tests):
//
//   KORTTI_SHIM_NO_PSS=1          the token lacks RSA-PSS, as older cards
//                                 and some modules do: the mechanisms are
//                                 left out of the list and refused.
//   KORTTI_SHIM_FINALIZE_HANG_S=N C_Finalize waits N seconds first, as a
//                                 module does that is disconnecting a card
//                                 pcscd is still busy with.

#include <p11-kit/pkcs11.h>

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace {

CK_FUNCTION_LIST* target = nullptr;
CK_FUNCTION_LIST shim;

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::string_view(v) == "1";
}

bool is_pss(CK_MECHANISM_TYPE m) {
  switch (m) {
    case CKM_RSA_PKCS_PSS:
    case CKM_SHA1_RSA_PKCS_PSS:
    case CKM_SHA224_RSA_PKCS_PSS:
    case CKM_SHA256_RSA_PKCS_PSS:
    case CKM_SHA384_RSA_PKCS_PSS:
    case CKM_SHA512_RSA_PKCS_PSS:
      return true;
    default:
      return false;
  }
}

CK_RV shim_finalize(void* reserved) {
  if (const char* s = std::getenv("KORTTI_SHIM_FINALIZE_HANG_S")) ::sleep(static_cast<unsigned>(std::atoi(s)));
  return target->C_Finalize(reserved);
}

CK_RV shim_get_mechanism_list(CK_SLOT_ID slot, CK_MECHANISM_TYPE* list, CK_ULONG* count) {
  if (!env_flag("KORTTI_SHIM_NO_PSS") || count == nullptr) return target->C_GetMechanismList(slot, list, count);
  CK_ULONG all = 0;
  CK_RV rv = target->C_GetMechanismList(slot, nullptr, &all);
  if (rv != CKR_OK) return rv;
  auto* mechs = new CK_MECHANISM_TYPE[all];
  rv = target->C_GetMechanismList(slot, mechs, &all);
  if (rv != CKR_OK) {
    delete[] mechs;
    return rv;
  }
  CK_MECHANISM_TYPE* end = std::remove_if(mechs, mechs + all, is_pss);
  const auto kept = static_cast<CK_ULONG>(end - mechs);
  if (list != nullptr) {
    if (*count < kept)
      rv = CKR_BUFFER_TOO_SMALL;
    else
      std::copy(mechs, end, list);
  }
  *count = kept;
  delete[] mechs;
  return rv;
}

CK_RV shim_get_mechanism_info(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO* info) {
  if (env_flag("KORTTI_SHIM_NO_PSS") && is_pss(type)) return CKR_MECHANISM_INVALID;
  return target->C_GetMechanismInfo(slot, type, info);
}

CK_RV shim_sign_init(CK_SESSION_HANDLE session, CK_MECHANISM* mechanism, CK_OBJECT_HANDLE key) {
  if (env_flag("KORTTI_SHIM_NO_PSS") && mechanism != nullptr && is_pss(mechanism->mechanism))
    return CKR_MECHANISM_INVALID;
  return target->C_SignInit(session, mechanism, key);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST** list) {
  if (list == nullptr) return CKR_ARGUMENTS_BAD;
  if (target == nullptr) {
    void* lib = ::dlopen(KORTTI_SHIM_TARGET, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return CKR_GENERAL_ERROR;
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib, "C_GetFunctionList"));
    if (get == nullptr || get(&target) != CKR_OK) return CKR_GENERAL_ERROR;
    std::memcpy(&shim, target, sizeof shim);
    shim.C_Finalize = shim_finalize;
    shim.C_GetMechanismList = shim_get_mechanism_list;
    shim.C_GetMechanismInfo = shim_get_mechanism_info;
    shim.C_SignInit = shim_sign_init;
  }
  *list = &shim;
  return CKR_OK;
}
