#pragma once

// Internal to scs/ (docs/architecture.md, Layering); include scs/scs.hpp.
#if !defined(KORTTI_COMPONENT_SCS) && !defined(KORTTI_WHITE_BOX)
#error "scs/handler.hpp is internal to scs/; include scs/scs.hpp"
#endif

// One HTTP request in, one response out: the defences in the order a
// request meets them (Host, Origin, method and path, Content-Type, the
// body, the rate), then /version or a signature through the service core.

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>

#include <boost/beast/http.hpp>

#include "common/task.hpp"
#include "scs/rules.hpp"
#include "scs/scs.hpp"
#include "service/service.hpp"

namespace kortti::scs {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;

class Handler {
 public:
  // Signatures are made for `owner`, the only uid the listener admits.
  Handler(service::Service& service, const Options& options, uid_t owner);

  // A request seen by its headers alone: the answer, or none for a /sign
  // whose body may be read (sign() then). Every refusal closes the
  // connection.
  [[nodiscard]] std::optional<Response> screen(const Request& request) const;
  // `gone` is requested when the page closed its connection: the signature
  // is abandoned, its dialog closed, and the answer is for the log only.
  Task<Response> sign(Request request, std::stop_token gone);
  // A refusal answered before the request was read whole (413).
  [[nodiscard]] Response refusal(const Request& request, const Refusal& refusal) const;
  // Ends the signatures in flight (korttid is stopping).
  void cancel_all();

 private:
  [[nodiscard]] std::optional<Response> answer_early(const Request& request) const;
  Task<Response> sign_request(const Request& request, const std::string& origin, std::stop_token gone);
  void log(const Request& request, const Response& response, std::chrono::steady_clock::time_point started) const;
  [[nodiscard]] Response answer(const Request& request, int status, const Json& body) const;
  // 503: as many signatures as may wait for the user already do.
  [[nodiscard]] Response busy(const Request& request) const;
  // The Origin header when it is on the allow-list; empty otherwise.
  [[nodiscard]] std::string allowed_origin(const Request& request) const;

  service::Service& service_;
  const Options& options_;
  uid_t owner_;
  RateLimit rate_;
  std::shared_ptr<std::size_t> pending_ = std::make_shared<std::size_t>(0);
  std::set<std::shared_ptr<std::stop_source>> running_;
};

}  // namespace kortti::scs
