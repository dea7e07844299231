#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/ocsp.h>
#include <spdlog/spdlog.h>

#include <ctime>

#include "common/encoding.hpp"
#include "common/time.hpp"
#include "policy/revocation.hpp"

namespace kortti::policy {

namespace {

constexpr std::chrono::seconds kRetryAfter{30};

std::string certid_key(OCSP_CERTID* id) {
  unsigned char* der = nullptr;
  const int n = i2d_OCSP_CERTID(id, &der);
  const OpensslBytes owned(der);
  return n > 0 ? hex_encode(ByteView(der, static_cast<std::size_t>(n))) : std::string();
}

// POSTs the request; the response, or null with why. The timeout bounds the
// whole exchange (http_exchange), so a responder whose name does not
// resolve in time, or that accepts and never answers, or answers a byte at
// a time, is cut off at `timeout`.
OcspResponsePtr post(const std::string& url, OCSP_REQUEST* req, std::chrono::seconds timeout, std::string& why_not) {
  const HttpRequest request{"application/ocsp-request", ASN1_ITEM_rptr(OCSP_REQUEST),
                            reinterpret_cast<const ASN1_VALUE*>(req), "application/ocsp-response", 100 * 1024};
  std::string why;
  BioPtr response = http_exchange(url, request, timeout, why);
  if (!response) {
    why_not = "OCSP responder " + url + " did not answer: " + why;
    return nullptr;
  }
  OcspResponsePtr parsed(d2i_OCSP_RESPONSE_bio(response.get(), nullptr));
  if (!parsed) why_not = "OCSP responder " + url + " sent something that is not an OCSP response";
  ERR_clear_error();
  return parsed;
}

std::string reason_name(int reason) { return reason < 0 ? std::string() : OCSP_crl_reason_str(reason); }

// A successful, signed answer about this certificate, fresh, with the
// nonce as [revocation] ocsp_nonce asks; or nothing, with why.
struct Checked {
  Answer answer;
  std::optional<SystemTime> next_update;
};
std::optional<Checked> check_response(OCSP_RESPONSE* response, OCSP_REQUEST* req, OCSP_CERTID* id, OcspNonce nonce_rule,
                                      X509_STORE* store, STACK_OF(X509) * untrusted, std::chrono::seconds skew,
                                      std::chrono::seconds max_age, const std::string& url, std::string& why_not) {
  if (OCSP_response_status(response) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    why_not = std::string("OCSP responder refused: ") + OCSP_response_status_str(OCSP_response_status(response));
    return std::nullopt;
  }
  OcspBasicPtr basic(OCSP_response_get1_basic(response));
  if (!basic) {
    why_not = "OCSP response has no basic response";
    return std::nullopt;
  }
  // Without the echoed nonce an answer could be a replay of an older one,
  // good until its nextUpdate though the certificate was revoked since.
  // `if_present` takes it anyway, for responders that pre-produce answers;
  // it is then held to the freshness check below only.
  bool echoed = false;
  if (nonce_rule != OcspNonce::off) {
    const int nonce = OCSP_check_nonce(req, basic.get());
    echoed = nonce == 1;
    if (nonce == 0) {
      why_not = "OCSP response nonce does not match the request's";
      return std::nullopt;
    }
    if (nonce == -1 && nonce_rule == OcspNonce::required) {
      why_not = "OCSP response does not echo the request's nonce (revocation.ocsp_nonce = \"required\")";
      return std::nullopt;
    }
  }
  if (OCSP_basic_verify(basic.get(), untrusted, store, 0) <= 0) {
    why_not = "OCSP response signature does not verify: " + openssl_error("untrusted responder");
    return std::nullopt;
  }
  int status = 0, reason = -1;
  ASN1_GENERALIZEDTIME *revoked = nullptr, *this_update = nullptr, *next_update = nullptr;
  if (OCSP_resp_find_status(basic.get(), id, &status, &reason, &revoked, &this_update, &next_update) != 1) {
    why_not = "OCSP response does not cover this certificate";
    return std::nullopt;
  }
  // An answer that neither echoes the nonce nor says until when it holds
  // could be years old: it is taken only as new as an answer is kept
  // ([revocation] max_cache_s).
  const long max_seconds = !echoed && next_update == nullptr ? static_cast<long>(max_age.count()) : -1;
  if (OCSP_check_validity(this_update, next_update, static_cast<long>(skew.count()), max_seconds) != 1) {
    why_not = "OCSP response is not current (thisUpdate/nextUpdate)";
    ERR_clear_error();
    return std::nullopt;
  }
  Answer a;
  a.source = url;
  a.status = status == V_OCSP_CERTSTATUS_GOOD ? "good" : status == V_OCSP_CERTSTATUS_REVOKED ? "revoked" : "unknown";
  if (status == V_OCSP_CERTSTATUS_REVOKED) {
    a.revoked_at = to_system_time(revoked);
    a.reason = reason_name(reason);
  }
  Checked checked;
  checked.answer = std::move(a);
  if (next_update != nullptr) checked.next_update = to_system_time(next_update);
  return checked;
}

}  // namespace

SystemTime to_system_time(const ASN1_TIME* t) { return kortti::to_system_time(t).value_or(SystemTime{}); }

std::optional<Answer> OcspClient::query(X509* leaf, X509* issuer, const std::string& url, X509_STORE* store,
                                        STACK_OF(X509) * untrusted, SystemTime now, std::chrono::seconds skew,
                                        std::string& why_not) {
  OcspCertIdPtr id(OCSP_cert_to_id(nullptr, leaf, issuer));
  if (!id) {
    why_not = "cannot name the certificate for OCSP";
    return std::nullopt;
  }
  const std::string key = certid_key(id.get());
  {
    std::lock_guard lock(mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      if (now < it->second.until) {
        Answer a = it->second.answer;
        a.cached = true;
        return a;
      }
      cache_.erase(it);
    }
  }
  {
    std::lock_guard lock(mutex_);
    if (auto it = down_until_.find(url); it != down_until_.end() && now < it->second) {
      why_not = "OCSP responder " + url + " gave no usable answer a moment ago; not asked again before " +
                to_rfc3339(it->second);
      return std::nullopt;
    }
  }
  OcspRequestPtr req(OCSP_REQUEST_new());
  OCSP_request_add0_id(req.get(), OCSP_CERTID_dup(id.get()));
  if (options_.ocsp_nonce != OcspNonce::off) OCSP_request_add1_nonce(req.get(), nullptr, -1);
  // A responder that gave no usable answer (none, a refusal such as
  // tryLater, one unsigned, stale or about something else) is not asked
  // again for a while: each check would otherwise wait on it again.
  const auto down = [&] {
    std::lock_guard lock(mutex_);
    make_room(down_until_, kMaxResponders, now, [](SystemTime until) { return until; });
    down_until_[url] = now + kRetryAfter;
    return std::nullopt;
  };
  OcspResponsePtr response = post(url, req.get(), options_.timeout, why_not);
  if (!response) return down();
  std::optional<Checked> checked = check_response(response.get(), req.get(), id.get(), options_.ocsp_nonce, store,
                                                  untrusted, skew, options_.max_cache, url, why_not);
  if (!checked) return down();
  const Answer& a = checked->answer;
  const SystemTime until = checked->next_update.value_or(now + options_.max_cache);
  std::lock_guard lock(mutex_);
  make_room(cache_, kMaxAnswers, now, [](const Cached& c) { return c.until; });
  cache_[key] = {a, until};
  return a;
}

}  // namespace kortti::policy
