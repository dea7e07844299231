#include "scs/screen.hpp"

#include "common/encoding.hpp"

namespace kortti::scs {

namespace http = boost::beast::http;

namespace {

std::string_view view(boost::beast::string_view s) { return {s.data(), s.size()}; }

}  // namespace

void bound(Parser& parser, const Options& options) {
  parser.header_limit(kHeaderLimit);
  parser.body_limit(options.max_body_bytes);
}

Json failed(Reason reason, const std::string& text) {
  return {
      {"version", "1.1"}, {"status", "failed"}, {"reasonCode", static_cast<int>(reason)}, {"reasonText", wstr(text)}};
}

std::string_view target_path(const Request& request) {
  const std::string_view target = view(request.target());
  return target.substr(0, target.find('?'));
}

std::string Screen::allowed_origin(const Request& request) const {
  const auto it = request.find(http::field::origin);
  if (it == request.end()) return {};
  const std::string origin(it->value());
  for (const auto& allowed : options_.allowed_origins)
    if (allowed == origin) return origin;
  return {};
}

Response Screen::answer(const Request& request, int status, const Json& body) const {
  Response response(static_cast<http::status>(status), request.version());
  response.set(http::field::content_type, "application/json");
  response.set(http::field::cache_control, "no-store");
  response.set("X-Content-Type-Options", "nosniff");
  response.set(http::field::vary, "Origin");
  const std::string origin = allowed_origin(request);
  if (!origin.empty()) response.set(http::field::access_control_allow_origin, origin);
  // Only a listed origin's page keeps its connection: any other page (an
  // image, a no-cors fetch without an Origin) could hold the slots with them.
  response.keep_alive(request.keep_alive() && !origin.empty());
  // Text korttid passes on (a token's label) may not be UTF-8: replaced, not thrown.
  response.body() = body.is_null() ? std::string() : to_std(body.dump(-1, ' ', false, Json::error_handler_t::replace));
  response.prepare_payload();
  // The answer to a HEAD is a GET's without its body (RFC 9110, 9.3.2): a
  // body after it would be read as the start of the next answer.
  if (request.method() == http::verb::head) response.body().clear();
  return response;
}

Response Screen::refusal(const Request& request, const Refusal& refusal) const {
  Response response = answer(request, refusal.http_status, failed(refusal.reason, refusal.text));
  // A refused client gets no idle connection to hold a slot with.
  response.keep_alive(false);
  return response;
}

bool Screen::probe(const Request& request) const {
  if (!allowed_origin(request).empty()) return false;
  const auto site = request.find("Sec-Fetch-Site");
  if (site == request.end()) return false;
  const std::string_view value = view(site->value());
  return value == "cross-site" || value == "same-site";
}

Response Screen::busy(const Request& request) const {
  return refusal(request, {503, Reason::busy, "other signatures are waiting for the user; try again"});
}

Response Screen::too_large(const Request& request) const {
  return refusal(request, {413, Reason::too_large,
                           "the request is longer than " + std::to_string(options_.max_body_bytes) +
                               " bytes ([scs] max_body_bytes)"});
}

std::optional<Response> Screen::headers(const Parser& parser, std::size_t pending) const {
  std::optional<Response> answer = answer_headers(parser.get(), pending);
  if (answer && !parser.is_done()) answer->keep_alive(false);
  return answer;
}

std::optional<Response> Screen::answer_headers(const Request& request, std::size_t pending) const {
  const bool has_origin = request.find(http::field::origin) != request.end();
  // DNS rebinding: a page of evil.example whose name now points at
  // 127.0.0.1 sends Host: evil.example.
  if (!host_allowed(view(request[http::field::host]), options_.port))
    return refusal(request,
                   {421, Reason::host_not_allowed,
                    "the Host must be localhost, 127.0.0.1 or [::1] with port " + std::to_string(options_.port)});
  if (has_origin && allowed_origin(request).empty())
    return refusal(request, {403, Reason::origin_not_allowed, "the origin is not in [scs] allowed_origins of korttid"});
  const std::string_view path = target_path(request);
  const bool version = path == "/version";
  const bool sign = path == "/sign";
  if (!version && !sign) return refusal(request, {404, Reason::not_found, "no such path: /version and /sign"});

  if (request.method() == http::verb::options) {
    // A preflight: only a listed origin learns what it may send.
    if (!has_origin) return refusal(request, {403, Reason::origin_not_allowed, "a preflight needs an Origin"});
    Response response = answer(request, 204, Json());
    response.set(http::field::access_control_allow_methods, version ? "GET" : "POST");
    response.set(http::field::access_control_allow_headers, "Content-Type");
    response.set(http::field::access_control_max_age, "600");
    // Chrome's Local Network Access asks before a public page reaches loopback.
    if (request["Access-Control-Request-Private-Network"] == "true")
      response.set("Access-Control-Allow-Private-Network", "true");
    return response;
  }
  if (version) {
    if (request.method() != http::verb::get && request.method() != http::verb::head)
      return refusal(request, {405, Reason::not_found, "/version takes GET"});
    return answer(request, 200, version_document());
  }
  if (request.method() != http::verb::post) return refusal(request, {405, Reason::not_found, "/sign takes POST"});
  if (pending >= options_.max_pending_signatures) return busy(request);
  // No page signs without saying where it is from.
  if (!has_origin)
    return refusal(request, {403, Reason::origin_not_allowed, "/sign needs an Origin header (a browser sends one)"});
  // text/plain would make a "simple" request that needs no preflight.
  if (!is_json_content_type(view(request[http::field::content_type])))
    return refusal(request, {415, Reason::content_type, "/sign takes Content-Type: application/json"});
  return std::nullopt;
}

std::variant<SignRequest, Response> Screen::body(const Request& request) const {
  const std::string& body = request.body();
  if (const JsonCost cost = json_cost(body, kMaxJsonNesting, kMaxJsonValues); cost != JsonCost::fine)
    return refusal(request, {400, Reason::bad_request,
                             cost == JsonCost::too_deep
                                 ? "the body nests deeper than " + std::to_string(kMaxJsonNesting) + " levels"
                                 : "the body has more than " + std::to_string(kMaxJsonValues) + " values"});
  const Json json = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return refusal(request, {400, Reason::bad_request, "the body is not JSON (UTF-8)"});
  auto parsed = parse_sign_request(json);
  if (const auto* refused = std::get_if<Refusal>(&parsed)) return refusal(request, *refused);
  SignRequest sign = std::move(std::get<SignRequest>(parsed));
  if (auto refused = check_authentication_use(sign, view(request[http::field::origin])))
    return refusal(request, *refused);
  return sign;
}

}  // namespace kortti::scs
