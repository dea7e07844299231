#include "ipc/jsonrpc.hpp"

#include <cstdint>

#include "common/encoding.hpp"
#include "common/secret.hpp"

namespace kortti::ipc {

namespace {

bool valid_id(const Json& id) {
  return id.is_number_integer() || (id.is_string() && id.get_ref<const WipingString&>().size() <= kMaxIdBytes);
}

Json invalid(const Json& id, const std::string& message) {
  return make_error(id, Error(Errc::invalid_request, message));
}

// The "attachment" member, if any: {"name": <params member>, "bytes": <n>}.
// Returns an error message when it is present but unusable.
std::string read_attachment(const Json& doc, std::size_t max_bytes, std::string& name, std::size_t& bytes) {
  auto it = doc.find("attachment");
  if (it == doc.end()) return {};
  const std::string shape = "\"attachment\" must be {\"name\": <params member>, \"bytes\": <length>}";
  if (!it->is_object()) return shape;
  const auto n = it->find("name");
  const auto b = it->find("bytes");
  if (n == it->end() || !n->is_string() || n->get_ref<const WipingString&>().empty() || b == it->end() ||
      !b->is_number_unsigned())
    return shape;
  if (b->get<std::uint64_t>() > max_bytes)
    return "the attachment is " + std::to_string(b->get<std::uint64_t>()) + " bytes, longer than the limit of " +
           std::to_string(max_bytes) + " bytes";
  name = to_std(n->get_ref<const WipingString&>());
  bytes = static_cast<std::size_t>(b->get<std::uint64_t>());
  return {};
}

}  // namespace

Incoming parse_request(std::string_view line, std::size_t max_attachment_bytes) {
  if (const JsonCost cost = json_cost(line, kMaxJsonNesting, kMaxJsonValues); cost != JsonCost::fine) {
    const std::string why =
        cost == JsonCost::too_deep
            ? "the message nests arrays or objects deeper than " + std::to_string(kMaxJsonNesting) + " levels"
            : "the message has more than " + std::to_string(kMaxJsonValues) + " values";
    return {.message = make_error(nullptr, Error(Errc::parse_error, why)),
            .framing_lost = true};  // whether an attachment follows is unknown
  }
  Json doc;
  {
    // The lexer's copies of each token (a PIN's) and its error's text.
    WipeFrees wiped;
    doc = Json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  }
  if (doc.is_discarded())
    return {.message = make_error(nullptr, Error(Errc::parse_error, "the message is not valid JSON"))};
  if (!doc.is_object()) return {.message = invalid(nullptr, "a request must be a JSON object")};
  Json id = nullptr;
  if (auto it = doc.find("id"); it != doc.end() && valid_id(*it)) id = *it;
  // The attachment first: once its length is known, any later error still
  // lets the connection skip its bytes and carry on.
  std::string attachment;
  std::size_t bytes = 0;
  if (auto problem = read_attachment(doc, max_attachment_bytes, attachment, bytes); !problem.empty())
    return {.message = invalid(id, problem), .framing_lost = true};
  auto refuse = [&](const Json& use_id, const std::string& message) {
    return Incoming{.message = invalid(use_id, message), .attachment_bytes = bytes};
  };
  auto version = doc.find("jsonrpc");
  if (version == doc.end() || !version->is_string() || *version != "2.0")
    return refuse(id, "\"jsonrpc\" must be \"2.0\"");
  auto raw_id = doc.find("id");
  if (raw_id == doc.end()) return refuse(nullptr, "\"id\" is required (korttid does not take notifications)");
  if (!valid_id(*raw_id))
    return refuse(nullptr,
                  "\"id\" must be an integer or a string of at most " + std::to_string(kMaxIdBytes) + " bytes");
  auto method = doc.find("method");
  if (method == doc.end() || !method->is_string() || method->get_ref<const WipingString&>().empty())
    return refuse(id, "\"method\" must be a non-empty string");
  Request request;
  request.id = std::move(id);
  request.method = to_std(method->get_ref<const WipingString&>());
  auto params = doc.find("params");
  if (params == doc.end() || params->is_null()) {
    request.params = Json::object();
  } else if (params->is_object()) {
    request.params = std::move(*params);
  } else {
    return refuse(request.id, "\"params\" must be an object");
  }
  if (!attachment.empty() && request.params.contains(wstr(attachment)))
    return refuse(request.id, "\"params\" has \"" + echo(attachment) + "\", which the attachment carries");
  request.attachment = std::move(attachment);
  return {.message = std::move(request), .attachment_bytes = bytes};
}

std::string echo(std::string_view name) {
  const std::string_view kept = utf8_prefix(name, kMaxEchoBytes);
  return std::string(kept) + (kept.size() < name.size() ? "..." : "");
}

Json make_result(const Json& id, Json result) {
  return Json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

Json make_error(const Json& id, const Error& error) {
  Json data = {{"reason", wstr(reason_of(error.code()))}};
  if (error.tries_left) data["tries_left"] = *error.tries_left;
  if (!error.detail.empty()) data["detail"] = wstr(error.detail);
  if (!error.reasons.empty()) {
    Json reasons = Json::array();
    for (const auto& r : error.reasons) reasons.push_back({{"code", wstr(r.code)}, {"message", wstr(r.message)}});
    data["reasons"] = std::move(reasons);
  }
  if (!error.correlation_id.empty()) data["correlation_id"] = wstr(error.correlation_id);
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
