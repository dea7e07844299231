#include "ipc/convert.hpp"
#include "ipc/core.hpp"

namespace kortti::ipc {

void register_reader_methods(Core& core) {
  core.add("readers.list", MethodGroup::read, [&core](const std::shared_ptr<Call>& call) {
    Json list = Json::array();
    if (core.services.pcsc == nullptr) return (void)call->respond(std::move(list));
    const auto tokens = core.services.tokens->tokens();
    for (const auto& reader : core.services.pcsc->readers()) {
      Json entry = to_json(reader);
      Json ids = Json::array();
      for (const auto& t : tokens)
        if (t.reader == reader.name) ids.push_back(wstr(t.token_id));
      entry["tokens"] = std::move(ids);
      list.push_back(std::move(entry));
    }
    call->respond(std::move(list));
  });
}

}  // namespace kortti::ipc
