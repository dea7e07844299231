// sign.batch: several signing requests on one card with one PIN entry. Each
// item is planned and (for prescriptions) checked by the policy on its own;
// the token then signs the prepared digests in order with the one credential,
// which lives only as long as the batch, within a bounded count and time.
// A card pulled midway fails the rest with card_removed; what was signed
// before stays signed and is returned.

#include <stop_token>

#include <boost/asio/steady_timer.hpp>

#include "ipc/core.hpp"
#include "ipc/params.hpp"
#include "ipc/shared.hpp"

namespace kortti::ipc {

namespace {

namespace asio = boost::asio;

constexpr std::string_view kItemMethods[] = {"sign.digest", "sign.data", "sign.xml", "sign.cms", "sign.prescription"};

class Batch : public std::enable_shared_from_this<Batch> {
 public:
  Batch(Core& core, std::shared_ptr<Call> call, std::string cert_id, pkcs11::Credentials credentials)
      : core_(core),
        call_(std::move(call)),
        cert_id_(std::move(cert_id)),
        credentials_(std::move(credentials)),
        timer_(core.io) {}

  void add(std::string method, std::function<ItemPlan()> make_plan) {
    methods_.push_back(std::move(method));
    plans_.emplace_back();
    results_.emplace_back();
    prepared_.emplace_back();
    try {
      plans_.back() = make_plan();
    } catch (const Error& e) {
      results_.back() = Result<Json>(e);
    }
  }

  void start(std::chrono::milliseconds limit) {
    // The client going away stops the batch as the deadline does.
    forward_.emplace(call_->stop_token(), [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->stop_.request_stop();
    });
    timer_.expires_after(limit);
    timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (auto self = weak.lock(); self && !ec) self->stop_.request_stop();
    });
    with_certificate(core_, call_, cert_id_,
                     [self = shared_from_this()](pkcs11::CertificateInfo cert) { self->prepare(std::move(cert)); });
  }

 private:
  void prepare(pkcs11::CertificateInfo cert) {
    for (std::size_t i = 0; i < plans_.size(); ++i)
      if (plans_[i]) ++waiting_;
    if (waiting_ == 0) return sign();
    for (std::size_t i = 0; i < plans_.size(); ++i) {
      if (!plans_[i]) continue;
      plans_[i](cert, [self = shared_from_this(), i](Result<PreparedItem> p) {
        if (p.ok())
          self->prepared_[i] = std::move(p).value();
        else
          self->results_[i] = Result<Json>(p.error());
        if (--self->waiting_ == 0) self->sign();
      });
    }
  }

  void sign() {
    std::vector<pkcs11::SignRequest> requests;
    for (std::size_t i = 0; i < prepared_.size(); ++i) {
      if (!prepared_[i]) continue;
      requests.push_back(sign_request(*prepared_[i], cert_id_, call_->peer().uid));
      order_.push_back(i);
    }
    if (requests.empty()) return finished();
    audits_.reserve(requests.size());
    for (std::size_t j = 0; j < requests.size(); ++j)
      audits_.push_back(audit_record(*call_, methods_[order_[j]], requests[j]));
    core_.services.tokens->sign_many(
        std::move(requests), std::move(credentials_), stop_.get_token(),
        [self = shared_from_this()](std::size_t j, Result<pkcs11::SignResult> r) { self->signed_one(j, std::move(r)); },
        [self = shared_from_this()](Result<Unit> r) {
          self->signing_done_ = true;
          // Refused as a whole (no such card, keys of two cards): every item says so.
          if (!r.ok())
            for (std::size_t i : self->order_)
              if (!self->results_[i]) self->results_[i] = Result<Json>(r.error());
          self->finished();
        });
  }

  void signed_one(std::size_t j, Result<pkcs11::SignResult> r) {
    const std::size_t i = order_[j];
    audit_signature(core_, *call_, audits_[j], r);
    if (!r.ok()) {
      results_[i] = Result<Json>(r.error());
      return;
    }
    ++finishing_;
    prepared_[i]->finish(std::move(r).value(), [self = shared_from_this(), i](Result<Json> answer) {
      self->results_[i] = std::move(answer);
      --self->finishing_;
      self->finished();
    });
  }

  void finished() {
    if ((!order_.empty() && !signing_done_) || finishing_ != 0) return;
    timer_.cancel();
    Json items = Json::array();
    std::size_t ok = 0;
    for (auto& r : results_) {
      if (r && r->ok()) {
        ++ok;
        items.push_back({{"result", std::move(*r).value()}});
      } else {
        const Error e = r ? r->error() : Error(Errc::internal_error, "the item was never signed");
        items.push_back({{"error", make_error(nullptr, e)["error"]}});
      }
    }
    call_->respond({{"items", std::move(items)}, {"signed", ok}, {"failed", results_.size() - ok}});
  }

  Core& core_;
  std::shared_ptr<Call> call_;
  std::string cert_id_;
  pkcs11::Credentials credentials_;  // moved to the token for the batch, wiped when it ends
  std::vector<std::string> methods_;
  std::vector<ItemPlan> plans_;
  std::vector<std::optional<Result<Json>>> results_;
  std::vector<std::optional<PreparedItem>> prepared_;
  std::vector<std::size_t> order_;  // signing position -> item
  std::vector<AuditRecord> audits_;
  std::size_t waiting_ = 0;
  std::size_t finishing_ = 0;
  bool signing_done_ = false;
  std::stop_source stop_;
  std::optional<std::stop_callback<std::function<void()>>> forward_;
  asio::steady_timer timer_;
};

}  // namespace

void register_batch_methods(Core& core) {
  core.add("sign.batch", MethodGroup::sign, [&core](const std::shared_ptr<Call>& call) {
    Params params(call->params());
    const std::string cert_id = params.string("cert_id");
    const Json* items = params.find("items");
    const std::size_t max = core.options.batch_max_items;
    if (items == nullptr || !items->is_array() || items->empty())
      invalid_param("items", "must be a non-empty array of {method, params}");
    if (items->size() > max)
      invalid_param("items", "holds " + std::to_string(items->size()) + " items; a batch has at most " +
                                 std::to_string(max) + " ([signature] batch_max_items)");
    auto batch = std::make_shared<Batch>(core, call, cert_id, params.credentials());
    Json& list = call->params()["items"];
    for (std::size_t i = 0; i < list.size(); ++i) {
      Json& item = list[i];
      const std::string method = item.is_object() && item.contains("method") && item["method"].is_string()
                                     ? std::string(item["method"].get_ref<const WipingString&>())
                                     : "";
      batch->add(method, [&core, &call, &item, &method, i]() -> ItemPlan {
        const std::string where = "items[" + std::to_string(i) + "]";
        if (std::find(std::begin(kItemMethods), std::end(kItemMethods), method) == std::end(kItemMethods))
          invalid_param(where + ".method",
                        "must be one of sign.digest, sign.data, sign.xml, sign.cms, sign.prescription");
        if (!item.contains("params")) item["params"] = Json::object();
        Json& p = item["params"];
        if (!p.is_object()) invalid_param(where + ".params", "must be an object");
        for (const char* own : {"cert_id", "pin", "pinpad"})
          if (p.contains(own)) invalid_param(where + ".params." + own, "belongs to the batch, not to an item");
        return plan_signature(core, call, method, p);
      });
    }
    // Time for the batch, and for the item in progress when it runs out.
    const auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(core.options.batch_max_time);
    call->arm_deadline(limit + core.options.request_timeout);
    batch->start(limit);
  });
}

}  // namespace kortti::ipc
