#pragma once

// Internal to scs/ (docs/architecture.md, Layering); include scs/scs.hpp.
#if !defined(KORTTI_COMPONENT_SCS) && !defined(KORTTI_WHITE_BOX)
#error "scs/handler.hpp is internal to scs/; include scs/scs.hpp"
#endif

// One HTTP request in, one response out: the answers that need no card
// (screen.hpp: Host, Origin, method and path, /version, Content-Type, the
// body), then the signatures waiting and the rate per origin, then a
// signature through the service core.

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>

#include "common/log_budget.hpp"
#include "common/task.hpp"
#include "scs/rules.hpp"
#include "scs/screen.hpp"
#include "scs/scs.hpp"
#include "service/service.hpp"

namespace kortti::scs {

class Handler {
 public:
  // Signatures are made for `owner`, the only uid the listener admits.
  Handler(service::Service& service, const Options& options, uid_t owner);

  // A request seen by its headers alone (`parser` has read them): the
  // answer, or none for a /sign whose body may be read (sign() then). Every
  // refusal closes the connection.
  [[nodiscard]] std::optional<Response> screen(const Parser& parser) const;
  // `gone` is requested when the page closed its connection: the signature
  // is abandoned, its dialog closed, and the answer is for the log only.
  Task<Response> sign(Request request, std::stop_token gone);
  // Closed unanswered (Screen::probe), and logged as such: an origin left
  // out of [scs] allowed_origins looks to the page like a closed port, and
  // the log is where the admin learns why.
  [[nodiscard]] bool probe(const Request& request) const;
  // A request longer than [scs] max_body_bytes (`parser` has read its
  // headers): refused as its headers are (screen()), else 413; logged.
  [[nodiscard]] Response too_large(const Parser& parser) const;
  // Ends the signatures in flight (korttid is stopping), and logs how many
  // request lines the budget left out.
  void cancel_all();

 private:
  Task<Response> sign_request(const Request& request, const std::string& origin, std::stop_token gone);
  void log(const Request& request, const Response& response, std::chrono::steady_clock::time_point started) const;
  // "scs: METHOD PATH origin=... -> OUTCOME", within the log budget.
  void log_line(const Request& request, const std::string& outcome) const;

  service::Service& service_;
  const Options& options_;
  Screen screen_;
  uid_t owner_;
  RateLimit rate_;
  mutable LogBudget log_budget_;  // the log's, not the answers'
  std::shared_ptr<std::size_t> pending_ = std::make_shared<std::size_t>(0);
  std::set<std::shared_ptr<std::stop_source>> running_;
};

}  // namespace kortti::scs
