// Token: signing a digest, alone (sign) or as a batch under one login
// (sign_each).

#include "pkcs11/token.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/digest.hpp"
#include "common/result.hpp"
#include "pkcs11/signing.hpp"

namespace kortti::pkcs11 {

namespace {

constexpr std::size_t kSignatureBuffer = 1024;  // RSA-8192 or any EC curve

}  // namespace

struct Token::Login {
  Token& token;
  bool active;
  ~Login() {
    if (!active || !token.anchor_) return;
    token.module_->fn()->C_Logout(token.anchor_->handle());
    token.keys_.clear();
  }
};

namespace {

// What the request asks of this key is possible: a scheme of its kind that
// the card offers, and a digest of the algorithm's size.
void check_request(const SignRequest& request, Scheme scheme, KeyType key_type,
                   const std::vector<CK_MECHANISM_TYPE>& mechanisms) {
  check_scheme_fits(scheme, key_type);
  if (!mechanisms.empty() && std::find(mechanisms.begin(), mechanisms.end(), mechanism_of(scheme)) == mechanisms.end())
    throw Error(Errc::unsupported, "this card does not offer " + std::string(name_of(scheme)) + " signatures");
  if (request.digest.size() != digest_size(request.digest_algorithm))
    throw Error(Errc::invalid_params,
                "the digest is not a " + std::string(name_of(request.digest_algorithm)) + " digest");
}

// A key that asks for its PIN at every signature (the PIN2 key) gets it with
// the request, and never signs a TLS handshake.
void check_key_use(bool always_authenticate, const SignRequest& request, const Credentials& credentials) {
  if (!always_authenticate) return;
  if (request.session_key)
    throw Error(Errc::unsupported,
                "this key asks for the PIN at every signature (a signature PIN key): it does not serve logins (TLS "
                "client authentication, login tokens)");
  if (!credentials.pin && !credentials.pinpad)
    throw Error(Errc::pin_required, "this key asks for the PIN at every signature");
}

}  // namespace

SignResult Token::sign_one(const SignRequest& request, const Credentials& credentials) {
  const CertificateInfo& cert = find_certificate(request.cert_id);
  const Scheme scheme = request.scheme.value_or(default_scheme(cert.key_type));
  check_request(request, scheme, cert.key_type, mechanisms_);
  Key key = private_key(cert.cert_id);
  check_key_use(key.always_authenticate, request, credentials);
  if (key.always_authenticate) check_typed_pin(credentials, request.uid);

  const Bytes input = scheme == Scheme::pkcs1 ? digest_info(request.digest_algorithm, request.digest) : request.digest;
  CK_RSA_PKCS_PSS_PARAMS pss = pss_params(request.digest_algorithm);
  CK_MECHANISM mechanism{mechanism_of(scheme), nullptr, 0};
  if (scheme == Scheme::pss) {
    mechanism.pParameter = &pss;
    mechanism.ulParameterLen = sizeof pss;
  }
  CK_RV rv = module_->fn()->C_SignInit(work().handle(), &mechanism, key.handle);
  if (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID) {
    // The module renumbered its objects; look the key up once more.
    keys_.erase(cert.cert_id);
    key = private_key(cert.cert_id);
    rv = module_->fn()->C_SignInit(work().handle(), &mechanism, key.handle);
  }
  if (rv != CKR_OK) throw failure(rv, "C_SignInit");
  Bytes signature = sign_initialised(key, credentials, request.uid, input);
  if (scheme == Scheme::ecdsa) signature = ecdsa_raw_to_der(signature);
  if (owner_) used_now();

  SignResult result;
  result.signature = std::move(signature);
  result.signature_algorithm = signature_algorithm_name(scheme, request.digest_algorithm);
  result.scheme = scheme;
  result.certificate = cert;
  return result;
}

Bytes Token::sign_initialised(const Key& key, const Credentials& credentials, uid_t uid, const Bytes& input) {
  CK_FUNCTION_LIST* fn = module_->fn();
  Session& s = work();
  if (key.always_authenticate) {
    const CK_RV rv = credentials.pinpad
                         ? fn->C_Login(s.handle(), CKU_CONTEXT_SPECIFIC, nullptr, 0)
                         : fn->C_Login(s.handle(), CKU_CONTEXT_SPECIFIC,
                                       reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(credentials.pin->data())),
                                       credentials.pin->size());
    if (rv != CKR_OK) {
      reset_work_session();
      throw_pin_failure(failure(rv, "C_Login(CKU_CONTEXT_SPECIFIC)"), typed_by(credentials.pinpad, uid));
    }
    hooks_->pin_guard->right(pin_key(), typed_by(credentials.pinpad, uid));
  }
  Bytes signature(kSignatureBuffer);
  CK_ULONG length = signature.size();
  CK_RV rv = fn->C_Sign(s.handle(), const_cast<CK_BYTE_PTR>(input.data()), input.size(), signature.data(), &length);
  if (rv == CKR_BUFFER_TOO_SMALL) {
    signature.resize(length);
    rv = fn->C_Sign(s.handle(), const_cast<CK_BYTE_PTR>(input.data()), input.size(), signature.data(), &length);
  }
  if (rv != CKR_OK) {
    Error e = failure(rv, "C_Sign");
    if (e.code() != Errc::card_removed) reset_work_session();
    throw e;
  }
  signature.resize(length);
  return signature;
}

SignResult Token::sign(const SignRequest& request, const Credentials& credentials) {
  bool transient = false;
  authorize(request.uid, credentials, request.cert_id, transient);
  Login undo{*this, transient};
  return sign_one(request, credentials);
}

void Token::sign_each(const std::vector<SignRequest>& requests, const Credentials& credentials,
                      const std::function<bool()>& stopped,
                      const std::function<void(std::size_t, Result<SignResult>)>& each) {
  if (requests.empty()) return;
  bool transient = false;
  try {
    authorize(requests.front().uid, credentials, requests.front().cert_id, transient);
  } catch (const Error& e) {
    for (std::size_t i = 0; i < requests.size(); ++i) each(i, e);
    return;
  }
  Login undo{*this, transient};
  std::optional<Error> stop_all;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (stop_all) {
      each(i, *stop_all);
      continue;
    }
    if (stopped()) {
      each(i, Error(Errc::token_busy, "the batch's deadline passed before this item was signed"));
      continue;
    }
    // The session's bounds hold inside a batch too: one that ends there is
    // logged out, and the rest of the batch is not signed. (The first item
    // was checked with the job, as every job is.)
    if (i > 0 && expire_if_due()) {
      spdlog::info("token {}: session expired during a batch, logged out", id_);
      stop_all = Error(Errc::pin_required,
                       "the PIN1 session ended during the batch ([session] lifetime_s or idle_timeout_s): it is "
                       "logged out, and the items after it are not signed");
      each(i, *stop_all);
      continue;
    }
    Result<SignResult> r = capture([&] { return sign_one(requests[i], credentials); });
    if (!r.ok()) {
      const Errc code = r.error().code();
      // A wrong PIN must not be tried again on the next item (it would burn
      // the card's retries); a pulled card cannot sign the rest.
      if (code == Errc::card_removed || code == Errc::pin_incorrect || code == Errc::pin_locked ||
          code == Errc::pin_entry_cancelled)
        stop_all = r.error();
    }
    each(i, std::move(r));
  }
}

}  // namespace kortti::pkcs11
