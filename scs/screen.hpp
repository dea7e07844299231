#pragma once

// Internal to scs/ (docs/architecture.md, Layering); include scs/scs.hpp.
#if !defined(KORTTI_COMPONENT_SCS) && !defined(KORTTI_WHITE_BOX)
#error "scs/screen.hpp is internal to scs/; include scs/scs.hpp"
#endif

// What the SCS interface answers a request without the card: the request
// read within bounds, its headers screened in the order a request meets the
// defences (Host, Origin, method and path, Content-Type), a /sign body read
// into a SignRequest, and every answer dressed the same way (CORS for a
// listed origin only, no-store, keep-alive for listed origins only). No
// state and no service: the handler adds the rate, the signatures waiting
// and the signature itself.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <boost/beast/http.hpp>

#include "common/json.hpp"
#include "scs/rules.hpp"
#include "scs/scs.hpp"

namespace kortti::scs {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;
using Parser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// A request's headers: more is refused as HTTP refuses it (the connection closes).
inline constexpr std::size_t kHeaderLimit = 8 * 1024;

// A request parser bounded as the listener reads: kHeaderLimit of headers,
// [scs] max_body_bytes of body.
void bound(Parser& parser, const Options& options);

// SCS's body of a failure: status "failed", the reason's code and text.
[[nodiscard]] Json failed(Reason reason, const std::string& text);

// The request's path without its query.
[[nodiscard]] std::string_view target_path(const Request& request);

class Screen {
 public:
  // `options` must outlive this.
  explicit Screen(const Options& options) : options_(options) {}

  // A request seen by its headers alone (`parser` has read them): the
  // answer, or none for a /sign whose body may be read. `pending`: the
  // signatures running now. An answer given before the request's body was
  // read closes the connection: that body would be read as the next request.
  [[nodiscard]] std::optional<Response> headers(const Parser& parser, std::size_t pending) const;
  // A page of another site asking as a page may without CORS (a no-cors
  // fetch, which may be a POST, an image, a script tag): the browser's
  // Sec-Fetch-Site says the request is not the user's own (cross-site or
  // same-site), and its Origin, if it sends one, is not on the allow-list.
  // Any answer to it, a refusal too, would tell the page that korttid runs
  // here: it is closed unanswered, as if nothing listened. (A CORS request
  // of such a page learns nothing either way: the browser hides a refusal
  // as it hides a closed port.) A listed origin's requests, the browser's
  // own navigation (Sec-Fetch-Site: none) and clients that send no
  // Sec-Fetch-Site (curl, an EHR's own code) are answered.
  [[nodiscard]] bool probe(const Request& request) const;
  // A /sign request read whole: what it asks to sign, or the refusal.
  [[nodiscard]] std::variant<SignRequest, Response> body(const Request& request) const;

  [[nodiscard]] Response answer(const Request& request, int status, const Json& body) const;
  // Closes the connection after it.
  [[nodiscard]] Response refusal(const Request& request, const Refusal& refusal) const;
  // 503: as many signatures as may wait for the user already do.
  [[nodiscard]] Response busy(const Request& request) const;
  // 413: the body is over [scs] max_body_bytes.
  [[nodiscard]] Response too_large(const Request& request) const;

 private:
  [[nodiscard]] std::optional<Response> answer_headers(const Request& request, std::size_t pending) const;
  // The Origin header when it is on the allow-list; empty otherwise.
  [[nodiscard]] std::string allowed_origin(const Request& request) const;

  const Options& options_;
};

}  // namespace kortti::scs
