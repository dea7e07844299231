#include "ipc/jsonrpc.hpp"

namespace kortti::ipc {

namespace {

bool valid_id(const Json& id) { return id.is_number_integer() || id.is_string(); }

Json invalid(const Json& id, const std::string& message) {
  return make_error(id, Error(Errc::invalid_request, message));
}

}  // namespace

std::variant<Request, Json> parse_request(std::string_view line) {
  Json doc = Json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return make_error(nullptr, Error(Errc::parse_error, "the message is not valid JSON"));
  if (!doc.is_object()) return invalid(nullptr, "a request must be a JSON object");
  Json id = nullptr;
  if (auto it = doc.find("id"); it != doc.end() && valid_id(*it)) id = *it;
  auto version = doc.find("jsonrpc");
  if (version == doc.end() || !version->is_string() || *version != "2.0")
    return invalid(id, "\"jsonrpc\" must be \"2.0\"");
  auto raw_id = doc.find("id");
  if (raw_id == doc.end()) return invalid(nullptr, "\"id\" is required (korttid does not take notifications)");
  if (!valid_id(*raw_id)) return invalid(nullptr, "\"id\" must be an integer or a string");
  auto method = doc.find("method");
  if (method == doc.end() || !method->is_string() || method->get_ref<const WipingString&>().empty())
    return invalid(id, "\"method\" must be a non-empty string");
  Request request;
  request.id = std::move(id);
  request.method = to_std(method->get_ref<const WipingString&>());
  auto params = doc.find("params");
  if (params == doc.end() || params->is_null()) {
    request.params = Json::object();
  } else if (params->is_object()) {
    request.params = std::move(*params);
  } else {
    return invalid(request.id, "\"params\" must be an object");
  }
  return request;
}

Json make_result(const Json& id, Json result) {
  return Json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

Json make_error(const Json& id, const Error& error, std::string_view correlation_id) {
  Json data = {{"reason", wstr(reason_of(error.code()))}};
  if (error.tries_left) data["tries_left"] = *error.tries_left;
  if (!error.detail.empty()) data["detail"] = wstr(error.detail);
  if (!error.reasons.empty()) {
    Json reasons = Json::array();
    for (const auto& r : error.reasons) reasons.push_back({{"code", wstr(r.code)}, {"message", wstr(r.message)}});
    data["reasons"] = std::move(reasons);
  }
  if (!correlation_id.empty()) data["correlation_id"] = wstr(correlation_id);
  return Json{{"jsonrpc", "2.0"},
              {"id", id},
              {"error",
               {{"code", static_cast<int>(error.code())}, {"message", wstr(error.what())}, {"data", std::move(data)}}}};
}

Json make_event(std::string_view topic, Json params) {
  params["topic"] = wstr(topic);
  return Json{{"jsonrpc", "2.0"}, {"method", "event"}, {"params", std::move(params)}};
}

}  // namespace kortti::ipc
