#include <spdlog/spdlog.h>

#include <filesystem>
#include <mutex>

#include "common/task.hpp"
#include "policy/policy.hpp"

namespace kortti::policy {

namespace asio = boost::asio;

// One thread's connection to the registry file, opened on first use. A file
// that is not there yet (nothing imported) is an empty registry; one that
// cannot be read says why. Either denies prescriptions; the next use tries
// again.
class RegistryHandle {
 public:
  explicit RegistryHandle(std::string path) : path_(std::move(path)) {}

  Registry::Lookup find(const std::optional<std::string>& number, const std::string& satu) {
    Registry::Lookup out;
    try {
      // Only `korttid registry import` creates the file.
      if (!registry_ && !std::filesystem::exists(path_)) {
        if (!missing_logged_) spdlog::warn("registry {}: not imported yet", path_);
        missing_logged_ = true;
        return out;
      }
      if (!registry_) registry_ = std::make_unique<Registry>(path_);
      if (number && !number->empty())
        out = registry_->by_registration_number(*number);
      else if (!satu.empty())
        out = registry_->by_satu(satu);
      else
        out.provenance = registry_->provenance();
    } catch (const std::exception& e) {
      spdlog::error("registry {}: {}", path_, e.what());
      registry_.reset();
      out = {};
      out.unreadable = e.what();
    }
    return out;
  }

 private:
  std::string path_;
  std::unique_ptr<Registry> registry_;
  bool missing_logged_ = false;
};

class PolicyService::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& io_context, Options policy_options)
      : io(io_context),
        options(std::move(policy_options)),
        validator(options.trust, options.revocation),
        rules(options.rules),
        checks(options.registry_path),
        reads(options.registry_path),
        worker("policy", kQueue),
        registry_worker("registry", kQueue) {}

  // A quarter of each queue is one uid's.
  static constexpr Worker::Limits kQueue{PolicyService::kMaxQueuedChecks, 0, PolicyService::kMaxQueuedChecks / 4, 0};

  asio::io_context& io;
  Options options;
  Validator validator;
  mutable std::mutex mutex;  // guards rules and provenance
  Rules rules;
  Provenance provenance;
  RegistryHandle checks;  // worker thread only
  RegistryHandle reads;   // registry_worker thread only
  // Checks may wait on a responder; lookups and status do not wait for them.
  Worker worker;
  Worker registry_worker;

  Registry::Lookup find(RegistryHandle& handle, const std::optional<std::string>& number, const std::string& satu) {
    Registry::Lookup out = handle.find(number, satu);
    std::lock_guard lock(mutex);
    provenance = out.provenance;
    return out;
  }

  Decision decide(const std::optional<Bytes>& der, const std::vector<Bytes>& chain,
                  const std::optional<std::string>& number, Action action, const Context& context) {
    const SystemTime now = std::chrono::system_clock::now();
    std::optional<Identity> identity;
    std::optional<ValidationResult> certificate;
    if (der) {
      identity = read_identity(*der, options.identity);
      certificate = validator.validate(*der, chain, action, now);
    }
    const Registry::Lookup lookup =
        find(checks, number ? number : (identity ? std::optional(identity->registration_number) : std::nullopt),
             identity ? identity->satu : std::string());
    Rules current;
    {
      std::lock_guard lock(mutex);
      current = rules;
    }
    // Valvira's dates are Finnish dates: compare them with the local date.
    return evaluate(current, action, identity, certificate, lookup, context, now, local_date(now));
  }
};

PolicyService::PolicyService(asio::io_context& io, Options options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {
  // The registry's provenance is known before the first request asks.
  impl_->registry_worker.post([impl = impl_] { impl->find(impl->reads, std::nullopt, ""); });
}

PolicyService::~PolicyService() = default;

Task<Decision> PolicyService::identity(Bytes der, std::vector<Bytes> chain, Action action, Ticket ticket) {
  return on(impl_->worker, std::move(ticket), [impl = impl_, der = std::move(der), chain = std::move(chain), action] {
    return impl->decide(der, chain, std::nullopt, action, Context{});
  });
}

Task<Decision> PolicyService::check(std::optional<Bytes> der, std::vector<Bytes> chain,
                                    std::optional<std::string> number, Action action, Context context, Ticket ticket) {
  return on(impl_->worker, std::move(ticket),
            [impl = impl_, der = std::move(der), chain = std::move(chain), number = std::move(number), action,
             context = std::move(context)] { return impl->decide(der, chain, number, action, context); });
}

namespace {

// A lookup's or status's answer, unless the registry could not be read.
Registry::Lookup readable(Registry::Lookup found) {
  if (!found.unreadable.empty())
    throw Error(Errc::service_unavailable, "the Valvira registry could not be read (" + found.unreadable + ")");
  return found;
}

}  // namespace

Task<Registry::Lookup> PolicyService::lookup(std::string number, Ticket ticket) {
  return on(impl_->registry_worker, std::move(ticket),
            [impl = impl_, number = std::move(number)] { return readable(impl->find(impl->reads, number, "")); });
}

Task<Provenance> PolicyService::status() {
  // system.status shows an unreadable registry as unknown.
  return on(impl_->registry_worker, {},
            [impl = impl_] { return readable(impl->find(impl->reads, std::nullopt, "")).provenance; });
}

Provenance PolicyService::provenance() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->provenance;
}

bool PolicyService::stale(SystemTime now) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->provenance.imported_at && now - *impl_->provenance.imported_at > impl_->rules.registry.max_age;
}

bool PolicyService::stop(std::chrono::milliseconds timeout) {
  const bool checks = impl_->worker.stop_and_wait(timeout);
  return impl_->registry_worker.stop_and_wait(timeout) && checks;
}

void PolicyService::set_rules(Rules rules) {
  std::lock_guard lock(impl_->mutex);
  impl_->rules = std::move(rules);
}

}  // namespace kortti::policy
