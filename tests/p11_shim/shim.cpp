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
//   KORTTI_SHIM_PINPAD=FILE       the tokens sit in a PIN-pad reader
//                                 (CKF_PROTECTED_AUTHENTICATION_PATH): what
//                                 the user types on the pad is FILE's next
//                                 line, for each PIN the module asks for
//                                 (C_Login, C_SetPIN, C_InitPIN without a
//                                 PIN); a line "cancel" presses Cancel.
//                                 FILE.read counts the lines used.
//   KORTTI_SHIM_SLOW_OPEN=FILE    a token's opening stops after its sessions
//                                 are open: C_GetMechanismList (asked for the
//                                 count) appends "opening" to FILE and waits
//                                 until FILE.go exists (20 s at most). Then
//                                 C_CloseSession and C_Finalize append
//                                 "close-session" and "finalize": a test can
//                                 stop korttid while a token is half open and
//                                 see the order of the two.
//   KORTTI_SHIM_SLOT_LIST=FILE    while FILE exists, C_GetSlotList fails
//                                 (CKR_DEVICE_ERROR), as a module does whose
//                                 reader service is gone.
//   KORTTI_SHIM_LOGOUT_FAILS=FILE while FILE exists, C_Logout fails
//                                 (CKR_DEVICE_ERROR) and the token stays
//                                 logged in.
//   KORTTI_SHIM_FIND_OBJECTS=FILE while FILE exists, C_FindObjectsInit fails
//                                 (CKR_DEVICE_ERROR), as a card does that
//                                 cannot be read: its certificates are not
//                                 listed, though the token is there.

#include <p11-kit/pkcs11.h>

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
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

// A line in KORTTI_SHIM_SLOW_OPEN's file, if it is set.
void journal(const char* line) {
  if (const char* file = std::getenv("KORTTI_SHIM_SLOW_OPEN")) std::ofstream(file, std::ios::app) << line << "\n";
}

CK_RV shim_finalize(void* reserved) {
  if (const char* s = std::getenv("KORTTI_SHIM_FINALIZE_HANG_S")) ::sleep(static_cast<unsigned>(std::atoi(s)));
  journal("finalize");
  return target->C_Finalize(reserved);
}

CK_RV shim_close_session(CK_SESSION_HANDLE session) {
  journal("close-session");
  return target->C_CloseSession(session);
}

CK_RV shim_get_mechanism_list(CK_SLOT_ID slot, CK_MECHANISM_TYPE* list, CK_ULONG* count) {
  if (const char* file = std::getenv("KORTTI_SHIM_SLOW_OPEN"); file != nullptr && list == nullptr) {
    journal("opening");
    const std::string go = std::string(file) + ".go";
    for (int i = 0; i < 2000 && ::access(go.c_str(), F_OK) != 0; ++i) ::usleep(10000);
  }
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

// The next entry on the PIN pad, or nullopt for Cancel.
std::optional<std::string> typed_on_pad() {
  const char* file = std::getenv("KORTTI_SHIM_PINPAD");
  std::ifstream counter(std::string(file) + ".read");
  int used = 0;
  counter >> used;
  std::ifstream in(file);
  std::string line;
  for (int i = 0; i <= used; ++i)
    if (!std::getline(in, line)) line = "cancel";
  std::ofstream(std::string(file) + ".read", std::ios::trunc) << used + 1 << "\n";
  if (line == "cancel") return std::nullopt;
  return line;
}

bool pinpad() { return std::getenv("KORTTI_SHIM_PINPAD") != nullptr; }

CK_UTF8CHAR_PTR utf8(std::string& s) { return reinterpret_cast<CK_UTF8CHAR_PTR>(s.data()); }

CK_RV shim_get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO* info) {
  const CK_RV rv = target->C_GetTokenInfo(slot, info);
  if (rv == CKR_OK && pinpad()) info->flags |= CKF_PROTECTED_AUTHENTICATION_PATH;
  return rv;
}

CK_RV shim_login(CK_SESSION_HANDLE session, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len) {
  if (!pinpad() || pin != nullptr) return target->C_Login(session, user, pin, len);
  auto typed = typed_on_pad();
  if (!typed) return CKR_FUNCTION_CANCELED;
  return target->C_Login(session, user, utf8(*typed), typed->size());
}

CK_RV shim_set_pin(CK_SESSION_HANDLE session, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len, CK_UTF8CHAR_PTR new_pin,
                   CK_ULONG new_len) {
  if (!pinpad() || old_pin != nullptr) return target->C_SetPIN(session, old_pin, old_len, new_pin, new_len);
  auto old_typed = typed_on_pad();
  if (!old_typed) return CKR_FUNCTION_CANCELED;
  auto new_typed = typed_on_pad();
  if (!new_typed) return CKR_FUNCTION_CANCELED;
  return target->C_SetPIN(session, utf8(*old_typed), old_typed->size(), utf8(*new_typed), new_typed->size());
}

CK_RV shim_init_pin(CK_SESSION_HANDLE session, CK_UTF8CHAR_PTR pin, CK_ULONG len) {
  if (!pinpad() || pin != nullptr) return target->C_InitPIN(session, pin, len);
  auto typed = typed_on_pad();
  if (!typed) return CKR_FUNCTION_CANCELED;
  return target->C_InitPIN(session, utf8(*typed), typed->size());
}

CK_RV shim_get_slot_list(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count) {
  if (const char* file = std::getenv("KORTTI_SHIM_SLOT_LIST"); file != nullptr && ::access(file, F_OK) == 0)
    return CKR_DEVICE_ERROR;
  return target->C_GetSlotList(present, list, count);
}

CK_RV shim_logout(CK_SESSION_HANDLE session) {
  if (const char* file = std::getenv("KORTTI_SHIM_LOGOUT_FAILS"); file != nullptr && ::access(file, F_OK) == 0)
    return CKR_DEVICE_ERROR;
  return target->C_Logout(session);
}

CK_RV shim_find_objects_init(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR templ, CK_ULONG count) {
  if (const char* file = std::getenv("KORTTI_SHIM_FIND_OBJECTS"); file != nullptr && ::access(file, F_OK) == 0)
    return CKR_DEVICE_ERROR;
  return target->C_FindObjectsInit(session, templ, count);
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
    shim.C_CloseSession = shim_close_session;
    shim.C_GetMechanismList = shim_get_mechanism_list;
    shim.C_GetMechanismInfo = shim_get_mechanism_info;
    shim.C_SignInit = shim_sign_init;
    shim.C_GetTokenInfo = shim_get_token_info;
    shim.C_Login = shim_login;
    shim.C_SetPIN = shim_set_pin;
    shim.C_InitPIN = shim_init_pin;
    shim.C_GetSlotList = shim_get_slot_list;
    shim.C_FindObjectsInit = shim_find_objects_init;
    shim.C_Logout = shim_logout;
  }
  *list = &shim;
  return CKR_OK;
}
