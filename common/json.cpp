#include "common/json.hpp"

namespace kortti {

void json_check_failed() { throw std::out_of_range("a JSON message lacks a member or element read from it"); }

namespace {

[[gnu::noinline]] void put(Json& object, std::string_view key, std::string_view value) {
  object[wstr(key)] = wstr(value);
}

}  // namespace

void put_scrubbed(Json& object, std::string_view key, std::string_view value) {
  put(object, key, value);
  scrub_stack();
}

JsonCost json_cost(std::string_view text, std::size_t max_depth, std::size_t max_values) {
  std::size_t depth = 0;
  std::size_t values = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return JsonCost::too_deep;
      if (++values > max_values) return JsonCost::too_many_values;
    } else if (c == ',' || c == ':') {
      if (++values > max_values) return JsonCost::too_many_values;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return JsonCost::fine;
}

}  // namespace kortti
