// The signing methods: params into the service core's SignItem, its Signed
// back into each method's result. sign.batch parses each item the same way.

#include "common/encoding.hpp"
#include "common/origin.hpp"
#include "ipc/convert.hpp"
#include "ipc/methods.hpp"
#include "ipc/params.hpp"
#include "policy/policy.hpp"

namespace kortti::ipc {

namespace {

constexpr std::string_view kItemMethods[] = {"sign.digest", "sign.data", "sign.xml", "sign.cms", "sign.prescription"};

std::string document_param(const service::Service& service, Params& params) {
  std::string document = params.string("document");
  service.check_document_size(document.size(), "document");
  return document;
}

service::DigestToSign digest_item(std::string_view method, Params& params) {
  service::DigestToSign item;
  if (method == "sign.data") {
    item.algorithm = params.digest_algorithm("digest_algorithm", DigestAlgorithm::sha256);
    item.digest = digest(item.algorithm, params.base64("data"));
  } else {
    item.algorithm = params.digest_algorithm("digest_algorithm", std::nullopt);
    item.digest = params.base64("digest");
    const std::size_t want = digest_size(item.algorithm);
    if (item.digest.size() != want)
      invalid_param("digest", "must be " + std::to_string(want) + " bytes for " + std::string(name_of(item.algorithm)) +
                                  ", not " + std::to_string(item.digest.size()));
  }
  item.scheme = params.scheme("scheme");
  return item;
}

service::XmlToSign xml_item(const service::Service& service, Params& params) {
  const std::string profile_name = params.string("profile");
  auto profile = signature::parse_profile(profile_name);
  if (!profile) invalid_param("profile", "must be kanta-cda or enveloped, not '" + echo(profile_name) + "'");
  return {document_param(service, params), *profile};
}

service::CmsToSign cms_item(const service::Service& service, Params& params) {
  const bool has_content = params.find("content") != nullptr;
  if (has_content == (params.find("digest") != nullptr))
    invalid_param("content", "give either content or digest (with digest_algorithm)");
  service::CmsToSign item;
  item.input.detached = params.boolean("detached", false);
  item.scheme = params.scheme("scheme");
  if (params.find("digest_algorithm") != nullptr)
    item.digest_algorithm = params.digest_algorithm("digest_algorithm", std::nullopt);
  if (has_content) {
    item.input.content = params.base64("content");
    service.check_document_size(item.input.content->size(), "content");
    return item;
  }
  if (!item.digest_algorithm) invalid_param("digest_algorithm", "is required with digest");
  if (!item.input.detached) invalid_param("detached", "must be true with digest: the content is not there to attach");
  item.input.content_digest = params.base64("digest");
  if (item.input.content_digest.size() != digest_size(*item.digest_algorithm))
    invalid_param("digest", "must be " + std::to_string(digest_size(*item.digest_algorithm)) + " bytes for " +
                                std::string(name_of(*item.digest_algorithm)));
  return item;
}

// What one signing method's params ask for, checked; `cert_id` and the PIN
// are not its business.
service::SignItem sign_item(const service::Service& service, std::string_view method, Json& json) {
  Params params(json);
  service::SignItem item;
  item.method = std::string(method);
  if (method == "sign.digest" || method == "sign.data")
    item.what = digest_item(method, params);
  else if (method == "sign.xml")
    item.what = xml_item(service, params);
  else if (method == "sign.cms")
    item.what = cms_item(service, params);
  else
    item.what = service::PrescriptionToSign{document_param(service, params), context_param(json)};
  return item;
}

Json signed_json(const service::Signed& s, std::string_view method) {
  if (method == "sign.xml") return {{"document", wstr(*s.document)}};
  if (method == "sign.cms") return {{"cms", wstr(base64_encode(*s.cms))}};
  if (method == "sign.prescription") return {{"document", wstr(*s.document)}, {"decision", to_json(*s.decision)}};
  return to_json(s.card);
}

// One item of a batch: its method, checked, and its params.
service::SignItem batch_item(const service::Service& service, Json& item, std::size_t i) {
  const std::string where = "items[" + std::to_string(i) + "]";
  const std::string method = item.is_object() && item.contains("method") && item["method"].is_string()
                                 ? std::string(item["method"].get_ref<const WipingString&>())
                                 : "";
  if (std::find(std::begin(kItemMethods), std::end(kItemMethods), method) == std::end(kItemMethods))
    invalid_param(where + ".method", "must be one of sign.digest, sign.data, sign.xml, sign.cms, sign.prescription");
  if (!item.contains("params")) item["params"] = Json::object();
  Json& p = item["params"];
  if (!p.is_object()) invalid_param(where + ".params", "must be an object");
  for (const char* own : {"cert_id", "pin", "pinpad"})
    if (p.contains(own)) invalid_param(where + ".params." + own, "belongs to the batch, not to an item");
  return sign_item(service, method, p);
}

}  // namespace

Task<Json> sign_one(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  std::string cert_id = params.identifier("cert_id");
  service::Caller caller = call->caller();
  // A browser front end (kortti-webeid) names the page it signs for, and the
  // PIN dialog and the audit line say it: as the client states it, since
  // korttid cannot see the browser.
  if (auto origin = params.optional_string("origin")) {
    check_web_origin(*origin);
    caller.origin = std::move(origin);
  }
  service::SignItem item = sign_item(core.service(), call->method(), call->params());
  const service::Signed s =
      co_await core.service().sign(std::move(caller), std::move(cert_id), std::move(item), params.credentials());
  co_return signed_json(s, call->method());
}

Task<Json> sign_batch(Core& core, std::shared_ptr<Call> call) {
  Params params(call->params());
  std::string cert_id = params.identifier("cert_id");
  const Json* items = params.find("items");
  const std::size_t max = core.service().options().batch_max_items;
  if (items == nullptr || !items->is_array() || items->empty())
    invalid_param("items", "must be a non-empty array of {method, params}");
  if (items->size() > max)
    invalid_param("items", "holds " + std::to_string(items->size()) + " items; a batch has at most " +
                               std::to_string(max) + " ([signature] batch_max_items)");
  pkcs11::Credentials credentials = params.credentials();
  Json& list = call->params()["items"];
  std::vector<Result<service::SignItem>> parsed;
  std::vector<std::string> methods;
  for (std::size_t i = 0; i < list.size(); ++i) {
    parsed.push_back(capture([&] { return batch_item(core.service(), list[i], i); }));
    methods.push_back(parsed.back().ok() ? parsed.back().value().method : "");
  }
  // Time for the batch, and for the item in progress when it runs out.
  const auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(core.service().options().batch_max_time);
  call->arm_deadline(limit + core.options.request_timeout);
  std::vector<Result<service::Signed>> results =
      co_await core.service().sign_batch(call->caller(), std::move(cert_id), std::move(parsed), std::move(credentials));
  Json out = Json::array();
  std::size_t ok = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) {
      ++ok;
      out.push_back({{"result", signed_json(results[i].value(), methods[i])}});
    } else {
      out.push_back({{"error", make_error(nullptr, results[i].error())["error"]}});
    }
  }
  co_return Json{{"items", std::move(out)}, {"signed", ok}, {"failed", results.size() - ok}};
}

}  // namespace kortti::ipc
