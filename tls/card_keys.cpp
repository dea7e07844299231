// The card-key provider: key management that holds a card certificate's
// public key (and refuses to give out a private part it does not have), and
// RSA / ECDSA signatures whose private operation is the Signer.
//
// Why its own library context: registering "RSA" and "EC" key management in
// the default context made libssl offer only PSS and never send an EC
// certificate. Here the default provider answers every fetch
// ("?provider=default"); a card key is created with "provider=kortti-card",
// and OpenSSL signs with the provider of the key it is given.

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>

#include <charconv>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include "common/digest.hpp"
#include "common/error.hpp"
#include "tls/tls.hpp"

namespace kortti::tls {

namespace {

// OpenSSL calls the provider's functions from C: nothing may be thrown
// through its frames (an allocation that fails is a 0 or a null to it, as
// to its own).
template <class Result, class Body>
Result in_c(Result failed, Body body) noexcept {
  try {
    return body();
  } catch (...) {
    ERR_raise(ERR_LIB_PROV, ERR_R_MALLOC_FAILURE);
    return failed;
  }
}

constexpr const char* kProvider = "kortti-card";
constexpr const char* kKeyParam = "kortti-card-key";

// What a card key is: the public key from the certificate and who signs.
struct Source {
  EvpPkeyPtr public_key;
  Signer signer;
  bool ec = false;
};

struct KeyData {
  std::shared_ptr<const Source> source;
};

// ---- key management ----

void* key_new(void*) { return new (std::nothrow) KeyData; }
void key_free(void* key) { delete static_cast<KeyData*>(key); }

void* key_dup(const void* key, int) {
  const auto* from = static_cast<const KeyData*>(key);
  return new (std::nothrow) KeyData{from->source};
}

// A card key comes in from CardKeys::key() with its Source. Anything else
// is a public key alone, which OpenSSL imports to compare a certificate's
// key with the card key (X509_check_private_key): it can never sign.
int key_import(void* key, int, const OSSL_PARAM params[]) {
  auto* k = static_cast<KeyData*>(key);
  if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, kKeyParam)) {
    const void* ptr = nullptr;
    std::size_t size = 0;
    if (OSSL_PARAM_get_octet_ptr(p, &ptr, &size) != 1 || size != sizeof(std::shared_ptr<const Source>)) return 0;
    k->source = *static_cast<const std::shared_ptr<const Source>*>(ptr);
    return 1;
  }
  const bool ec = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_GROUP_NAME) != nullptr;
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, ec ? "EC" : "RSA", "provider=default"));
  EVP_PKEY* pub = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pub, EVP_PKEY_PUBLIC_KEY, const_cast<OSSL_PARAM*>(params)) != 1)
    return 0;
  return in_c(0, [&] {
    k->source = std::make_shared<const Source>(Source{EvpPkeyPtr(pub), nullptr, ec});
    return 1;
  });
}

const OSSL_PARAM* key_import_types(int) {
  static const OSSL_PARAM types[] = {OSSL_PARAM_octet_ptr(kKeyParam, nullptr, 0),
                                     OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
                                     OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
                                     OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
                                     OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
                                     OSSL_PARAM_END};
  return types;
}

// The public part, and only when nothing more is asked: a request for the
// private part fails, which makes OpenSSL sign with this provider rather than
// hand a public-only copy of the key to another one.
int key_export(void* key, int selection, OSSL_CALLBACK* callback, void* arg) {
  const auto* k = static_cast<KeyData*>(key);
  if (!k->source || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 ||
      (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) == 0)
    return 0;
  OSSL_PARAM* params = nullptr;
  if (EVP_PKEY_todata(k->source->public_key.get(), EVP_PKEY_PUBLIC_KEY, &params) != 1) return 0;
  const OsslParamPtr owned(params);
  return callback(params, arg);
}

const OSSL_PARAM* rsa_export_types(int) {
  static const OSSL_PARAM types[] = {OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
                                     OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0), OSSL_PARAM_END};
  return types;
}

const OSSL_PARAM* ec_export_types(int) {
  static const OSSL_PARAM types[] = {OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
                                     OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0), OSSL_PARAM_END};
  return types;
}

int key_has(const void* key, int selection) {
  const auto* k = static_cast<const KeyData*>(key);
  if (!k->source) return 0;
  return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) == 0 || k->source->signer ? 1 : 0;
}

int key_match(const void* a, const void* b, int) {
  const auto* x = static_cast<const KeyData*>(a);
  const auto* y = static_cast<const KeyData*>(b);
  return x->source && y->source && EVP_PKEY_eq(x->source->public_key.get(), y->source->public_key.get()) == 1;
}

// bits, security-bits, max-size, the default digest, an EC key's group:
// what libssl asks to pick signature algorithms, answered by the public key.
int key_get_params(void* key, OSSL_PARAM params[]) {
  const auto* k = static_cast<KeyData*>(key);
  if (!k->source) return 0;
  EVP_PKEY* pub = k->source->public_key.get();
  if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS);
      p && !OSSL_PARAM_set_int(p, EVP_PKEY_get_bits(pub)))
    return 0;
  if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS);
      p && !OSSL_PARAM_set_int(p, EVP_PKEY_get_security_bits(pub)))
    return 0;
  if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE);
      p && !OSSL_PARAM_set_int(p, EVP_PKEY_get_size(pub)))
    return 0;
  if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_DEFAULT_DIGEST);
      p && !OSSL_PARAM_set_utf8_string(p, k->source->ec ? "SHA384" : "SHA256"))
    return 0;
  if (OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_GROUP_NAME); p && k->source->ec) {
    char group[64] = {};
    std::size_t length = 0;
    if (EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &length) != 1 ||
        !OSSL_PARAM_set_utf8_string(p, group))
      return 0;
  }
  return 1;
}

const OSSL_PARAM* key_gettable_params(void*) {
  static const OSSL_PARAM types[] = {OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
                                     OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
                                     OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
                                     OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, nullptr, 0),
                                     OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
                                     OSSL_PARAM_END};
  return types;
}

const char* rsa_operation_name(int) { return "RSA"; }
const char* ec_operation_name(int) { return "ECDSA"; }

// ---- signatures ----

struct SignContext {
  std::shared_ptr<const Source> source;
  DigestAlgorithm digest = DigestAlgorithm::sha256;  // the one libssl asked for
  int padding = RSA_PKCS1_PADDING;
  Bytes data;  // what digest_sign_update gathered
};

void* sign_newctx(void*, const char*) { return new (std::nothrow) SignContext; }
void sign_freectx(void* ctx) { delete static_cast<SignContext*>(ctx); }
void* sign_dupctx(void* ctx) {
  return in_c<void*>(nullptr, [&] { return new SignContext(*static_cast<SignContext*>(ctx)); });
}

int sign_init(void* ctx, const char* mdname, void* key, const OSSL_PARAM params[]);
int sign_set_params(void* ctx, const OSSL_PARAM params[]);

std::optional<DigestAlgorithm> digest_named(const std::string& name) {
  if (const EvpMdPtr md{EVP_MD_fetch(nullptr, name.c_str(), nullptr)}) {
    const std::string canonical = EVP_MD_get0_name(md.get());
    if (canonical == "SHA2-256") return DigestAlgorithm::sha256;
    if (canonical == "SHA2-384") return DigestAlgorithm::sha384;
    if (canonical == "SHA2-512") return DigestAlgorithm::sha512;
  }
  return std::nullopt;
}

int sign_init(void* ctx, const char* mdname, void* key, const OSSL_PARAM params[]) {
  return in_c(0, [&] {
    auto* c = static_cast<SignContext*>(ctx);
    if (key != nullptr) c->source = static_cast<KeyData*>(key)->source;
    if (!c->source || !c->source->signer) return 0;
    const char* name = mdname != nullptr ? mdname : (c->source->ec ? "SHA384" : "SHA256");
    // Refused here, not at the card: libssl asks whether a key signs with a
    // digest (EVP_PKEY_digestsign_supports_digest) before it picks a TLS 1.2
    // signature algorithm, and a server may list SHA-224 first.
    const std::optional<DigestAlgorithm> algorithm = digest_named(name);
    if (!algorithm) {
      ERR_raise_data(ERR_LIB_PROV, ERR_R_UNSUPPORTED, "a card key signs with SHA-256, SHA-384 or SHA-512, not %s",
                     name);
      return 0;
    }
    c->digest = *algorithm;
    c->padding = RSA_PKCS1_PADDING;
    c->data.clear();
    return sign_set_params(ctx, params);
  });
}

// The one card operation of a handshake. Errors go to OpenSSL's queue, which
// libssl turns into a handshake failure; the Signer has logged the cause.
int sign_now(SignContext* c, unsigned char* sig, std::size_t* siglen, std::size_t sigsize, ByteView tbs) {
  const std::size_t max = static_cast<std::size_t>(EVP_PKEY_get_size(c->source->public_key.get()));
  if (sig == nullptr) {
    *siglen = max;
    return 1;
  }
  const Scheme scheme = c->source->ec                         ? Scheme::ecdsa
                        : c->padding == RSA_PKCS1_PSS_PADDING ? Scheme::pss
                                                              : Scheme::pkcs1;
  try {
    const Bytes signature = c->source->signer(c->digest, scheme, digest(c->digest, tbs));
    if (signature.size() > sigsize) {
      ERR_raise_data(ERR_LIB_PROV, ERR_R_OPERATION_FAIL, "the card's signature is %zu bytes, more than the %zu asked",
                     signature.size(), sigsize);
      return 0;
    }
    std::memcpy(sig, signature.data(), signature.size());
    *siglen = signature.size();
    return 1;
  } catch (const std::exception& e) {
    ERR_raise_data(ERR_LIB_PROV, ERR_R_OPERATION_FAIL, "the card did not sign: %s", e.what());
    return 0;
  } catch (...) {
    ERR_raise_data(ERR_LIB_PROV, ERR_R_OPERATION_FAIL, "the card did not sign");
    return 0;
  }
}

int sign_update(void* ctx, const unsigned char* data, std::size_t size) {
  return in_c(0, [&] {
    auto* c = static_cast<SignContext*>(ctx);
    c->data.insert(c->data.end(), data, data + size);
    return 1;
  });
}

int sign_final(void* ctx, unsigned char* sig, std::size_t* siglen, std::size_t sigsize) {
  auto* c = static_cast<SignContext*>(ctx);
  return sign_now(c, sig, siglen, sigsize, c->data);
}

int sign_oneshot(void* ctx, unsigned char* sig, std::size_t* siglen, std::size_t sigsize, const unsigned char* tbs,
                 std::size_t tbslen) {
  return sign_now(static_cast<SignContext*>(ctx), sig, siglen, sigsize, ByteView(tbs, tbslen));
}

// PKCS#1 or PSS for RSA. PSS is always MGF1 with the signature's digest and
// a salt as long as the digest, as TLS 1.3 and the card both do. Each
// parameter is read by the type it comes as: libssl sends the padding as a
// number and the salt length as text ("digest"); EVP_PKEY_CTX_set_* helpers
// send both as text. Anything else is refused.
int set_padding(SignContext& c, const OSSL_PARAM& p) {
  int mode = 0;
  const char* name = nullptr;
  if (p.data_type == OSSL_PARAM_INTEGER && OSSL_PARAM_get_int(&p, &mode) == 1) {
    // Its value is checked below.
  } else if (p.data_type == OSSL_PARAM_UTF8_STRING && OSSL_PARAM_get_utf8_string_ptr(&p, &name) == 1) {
    mode = std::strcmp(name, OSSL_PKEY_RSA_PAD_MODE_PSS) == 0       ? RSA_PKCS1_PSS_PADDING
           : std::strcmp(name, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0 ? RSA_PKCS1_PADDING
                                                                    : 0;
  } else {
    return 0;
  }
  if (mode != RSA_PKCS1_PADDING && mode != RSA_PKCS1_PSS_PADDING) return 0;
  c.padding = mode;
  return 1;
}

int check_salt_length(const SignContext& c, const OSSL_PARAM& p) {
  const int digest_length = static_cast<int>(digest_size(c.digest));
  int length = 0;
  const char* name = nullptr;
  if (p.data_type == OSSL_PARAM_INTEGER && OSSL_PARAM_get_int(&p, &length) == 1)
    return length == RSA_PSS_SALTLEN_DIGEST || length == digest_length ? 1 : 0;
  if (p.data_type != OSSL_PARAM_UTF8_STRING || OSSL_PARAM_get_utf8_string_ptr(&p, &name) != 1) return 0;
  if (std::strcmp(name, OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST) == 0) return 1;
  const std::string_view text(name);
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), length);
  return ec == std::errc() && end == text.data() + text.size() && length == digest_length ? 1 : 0;
}

int sign_set_params(void* ctx, const OSSL_PARAM params[]) {
  auto* c = static_cast<SignContext*>(ctx);
  if (params == nullptr) return 1;
  return in_c(0, [&] {
    if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE))
      if (set_padding(*c, *p) != 1) return 0;
    if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN))
      if (check_salt_length(*c, *p) != 1) return 0;
    if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) {
      const char* name = nullptr;
      if (OSSL_PARAM_get_utf8_string_ptr(p, &name) != 1 || digest_named(name) != c->digest) return 0;
    }
    return 1;
  });
}

const OSSL_PARAM* sign_settable_params(void*, void*) {
  static const OSSL_PARAM types[] = {OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, nullptr, 0),
                                     OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, nullptr, 0),
                                     OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, nullptr, 0),
                                     OSSL_PARAM_END};
  return types;
}

int sign_get_params(void*, OSSL_PARAM*) { return 1; }
const OSSL_PARAM* sign_gettable_params(void*, void*) {
  static const OSSL_PARAM types[] = {OSSL_PARAM_END};
  return types;
}

// OpenSSL's dispatch tables hold every function as void (*)(void).
template <class F>
constexpr void (*fn(F* f))() {
  return reinterpret_cast<void (*)()>(f);
}

const OSSL_DISPATCH kRsaKeys[] = {{OSSL_FUNC_KEYMGMT_NEW, fn(key_new)},
                                  {OSSL_FUNC_KEYMGMT_FREE, fn(key_free)},
                                  {OSSL_FUNC_KEYMGMT_DUP, fn(key_dup)},
                                  {OSSL_FUNC_KEYMGMT_IMPORT, fn(key_import)},
                                  {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, fn(key_import_types)},
                                  {OSSL_FUNC_KEYMGMT_EXPORT, fn(key_export)},
                                  {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, fn(rsa_export_types)},
                                  {OSSL_FUNC_KEYMGMT_HAS, fn(key_has)},
                                  {OSSL_FUNC_KEYMGMT_MATCH, fn(key_match)},
                                  {OSSL_FUNC_KEYMGMT_GET_PARAMS, fn(key_get_params)},
                                  {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, fn(key_gettable_params)},
                                  {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, fn(rsa_operation_name)},
                                  {0, nullptr}};
// The same but for what an EC key exports and signs with.
const OSSL_DISPATCH kEcKeys[] = {{OSSL_FUNC_KEYMGMT_NEW, fn(key_new)},
                                 {OSSL_FUNC_KEYMGMT_FREE, fn(key_free)},
                                 {OSSL_FUNC_KEYMGMT_DUP, fn(key_dup)},
                                 {OSSL_FUNC_KEYMGMT_IMPORT, fn(key_import)},
                                 {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, fn(key_import_types)},
                                 {OSSL_FUNC_KEYMGMT_EXPORT, fn(key_export)},
                                 {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, fn(ec_export_types)},
                                 {OSSL_FUNC_KEYMGMT_HAS, fn(key_has)},
                                 {OSSL_FUNC_KEYMGMT_MATCH, fn(key_match)},
                                 {OSSL_FUNC_KEYMGMT_GET_PARAMS, fn(key_get_params)},
                                 {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, fn(key_gettable_params)},
                                 {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, fn(ec_operation_name)},
                                 {0, nullptr}};

const OSSL_DISPATCH kSignature[] = {{OSSL_FUNC_SIGNATURE_NEWCTX, fn(sign_newctx)},
                                    {OSSL_FUNC_SIGNATURE_FREECTX, fn(sign_freectx)},
                                    {OSSL_FUNC_SIGNATURE_DUPCTX, fn(sign_dupctx)},
                                    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, fn(sign_init)},
                                    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, fn(sign_update)},
                                    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, fn(sign_final)},
                                    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN, fn(sign_oneshot)},
                                    {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, fn(sign_set_params)},
                                    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, fn(sign_settable_params)},
                                    {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, fn(sign_get_params)},
                                    {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, fn(sign_gettable_params)},
                                    {0, nullptr}};

const OSSL_ALGORITHM kKeyAlgorithms[] = {
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", "provider=kortti-card", kRsaKeys, "card RSA key"},
    {"EC:id-ecPublicKey:1.2.840.10045.2.1", "provider=kortti-card", kEcKeys, "card EC key"},
    {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kSignatureAlgorithms[] = {
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", "provider=kortti-card", kSignature, "card RSA signature"},
    {"ECDSA", "provider=kortti-card", kSignature, "card ECDSA signature"},
    {nullptr, nullptr, nullptr, nullptr}};

const OSSL_ALGORITHM* query(void*, int operation, int* no_cache) {
  *no_cache = 0;
  if (operation == OSSL_OP_KEYMGMT) return kKeyAlgorithms;
  if (operation == OSSL_OP_SIGNATURE) return kSignatureAlgorithms;
  return nullptr;
}

const OSSL_DISPATCH kProviderFunctions[] = {{OSSL_FUNC_PROVIDER_QUERY_OPERATION, fn(query)}, {0, nullptr}};

int provider_init(const OSSL_CORE_HANDLE*, const OSSL_DISPATCH*, const OSSL_DISPATCH** out, void** provctx) {
  *out = kProviderFunctions;
  *provctx = nullptr;
  return 1;
}

}  // namespace

struct CardKeys::Impl {
  // Declared so that the providers are unloaded, and the certificates
  // freed, before the context goes.
  OsslLibCtxPtr context{OSSL_LIB_CTX_new()};
  OsslProviderPtr defaults;
  OsslProviderPtr cards;
  // Certificates parsed before, by the SHA-256 of their DER (a map keyed by
  // the DER itself trips GCC 12's -Wstringop-overread at -O3 in the vector
  // comparison). A workstation sees a handful of card certificates; the map
  // is emptied if it ever holds more.
  static constexpr std::size_t kMostCertificates = 32;
  std::mutex mutex;
  std::map<std::string, X509Ptr> certificates;
};

CardKeys::CardKeys() : impl_(std::make_unique<Impl>()) {
  OSSL_LIB_CTX* context = impl_->context.get();
  bool ok = context != nullptr && OSSL_PROVIDER_add_builtin(context, kProvider, provider_init) == 1;
  if (ok) impl_->defaults.reset(OSSL_PROVIDER_load(context, "default"));
  if (impl_->defaults) impl_->cards.reset(OSSL_PROVIDER_load(context, kProvider));
  ok = impl_->cards && EVP_set_default_properties(context, "?provider=default") == 1;
  if (!ok) throw std::runtime_error(openssl_error("cannot set up the card-key provider"));
}

CardKeys::~CardKeys() = default;

OSSL_LIB_CTX* CardKeys::context() const noexcept { return impl_->context.get(); }

X509Ptr CardKeys::certificate(const Bytes& der) const {
  const std::string id = sha256_hex(der);
  std::lock_guard lock(impl_->mutex);
  auto& known = impl_->certificates;
  auto it = known.find(id);
  if (it == known.end()) {
    X509Ptr parsed = parse_certificate(der);
    if (!parsed) return parsed;
    if (known.size() >= Impl::kMostCertificates) known.clear();
    it = known.emplace(id, std::move(parsed)).first;
  }
  X509_up_ref(it->second.get());
  return X509Ptr(it->second.get());
}

EvpPkeyPtr CardKeys::key(const Bytes& certificate_der, Signer signer) const {
  X509Ptr cert = certificate(certificate_der);
  EVP_PKEY* pub = cert ? X509_get0_pubkey(cert.get()) : nullptr;
  if (pub == nullptr) return EvpPkeyPtr(nullptr);
  const bool ec = EVP_PKEY_is_a(pub, "EC") == 1;
  if (!ec && EVP_PKEY_is_a(pub, "RSA") != 1) return EvpPkeyPtr(nullptr);
  EVP_PKEY_up_ref(pub);
  auto source = std::make_shared<const Source>(Source{EvpPkeyPtr(pub), std::move(signer), ec});
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(impl_->context.get(), ec ? "EC" : "RSA", "provider=kortti-card"));
  // The param carries a pointer to `source`; key_import copies it.
  void* handle = &source;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_ptr(kKeyParam, &handle, sizeof source), OSSL_PARAM_construct_end()};
  EVP_PKEY* key = nullptr;
  // OpenSSL's error queue says why, for the caller's message.
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
    return EvpPkeyPtr(nullptr);
  return EvpPkeyPtr(key);
}

}  // namespace kortti::tls
