#include "common/names.hpp"
#include "ipc/ipc.hpp"

namespace kortti::ipc {

std::string_view name_of(MethodGroup group) noexcept {
  static constexpr Named<MethodGroup> kGroups[] = {{MethodGroup::read, "read"},
                                                   {MethodGroup::session, "session"},
                                                   {MethodGroup::sign, "sign"},
                                                   {MethodGroup::admin, "admin"}};
  return name_in(kGroups, group);
}

AccessPolicy::AccessPolicy() {
  set(MethodGroup::read, {"*"});
  set(MethodGroup::session, {"*"});
  set(MethodGroup::sign, {"*"});
  set(MethodGroup::admin, {"uid:0"});
}

void AccessPolicy::set(MethodGroup group, const std::vector<std::string>& entries) {
  rules_[static_cast<std::size_t>(group)] = Principals::parse(entries);
}

bool AccessPolicy::allows(const Peer& peer, MethodGroup group) const {
  return rules_[static_cast<std::size_t>(group)].includes(peer);
}

}  // namespace kortti::ipc
