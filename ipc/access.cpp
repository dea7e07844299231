#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>

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

namespace {

// A uid or gid as the kernel has them. Out of range is refused, not cut:
// uid:4294967296 must not become uid 0. (uid_t)-1 means "no id" to the kernel.
template <class Id>
std::optional<Id> id_number(std::string_view s) {
  Id v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty() || v == static_cast<Id>(-1)) return std::nullopt;
  return v;
}

}  // namespace

AccessPolicy::AccessPolicy() {
  set(MethodGroup::read, {"*"});
  set(MethodGroup::session, {"*"});
  set(MethodGroup::sign, {"*"});
  set(MethodGroup::admin, {"uid:0"});
}

void AccessPolicy::set(MethodGroup group, const std::vector<std::string>& entries) {
  Rule rule;
  for (const std::string& entry : entries) {
    if (entry == "*") {
      rule.anyone = true;
      continue;
    }
    const auto colon = entry.find(':');
    const std::string kind = entry.substr(0, colon);
    const std::string value = colon == std::string::npos ? "" : entry.substr(colon + 1);
    if (kind == "uid" && id_number<uid_t>(value)) {
      rule.uids.insert(*id_number<uid_t>(value));
    } else if (kind == "gid" && id_number<gid_t>(value)) {
      rule.gids.insert(*id_number<gid_t>(value));
    } else if (kind == "user" && !value.empty()) {
      const passwd* pw = getpwnam(value.c_str());
      if (pw == nullptr) throw std::invalid_argument("no such user '" + value + "'");
      rule.uids.insert(pw->pw_uid);
    } else if (kind == "group" && !value.empty()) {
      const struct group* gr = getgrnam(value.c_str());
      if (gr == nullptr) throw std::invalid_argument("no such group '" + value + "'");
      rule.gids.insert(gr->gr_gid);
    } else {
      throw std::invalid_argument("'" + entry +
                                  "' is not \"*\", uid:N, gid:N (N from 0 to 4294967294), user:NAME or group:NAME");
    }
  }
  rules_[static_cast<std::size_t>(group)] = std::move(rule);
}

bool AccessPolicy::allows(const Peer& peer, MethodGroup group) const {
  const Rule& rule = rules_[static_cast<std::size_t>(group)];
  if (rule.anyone || rule.uids.count(peer.uid) != 0 || rule.gids.count(peer.gid) != 0) return true;
  return std::any_of(peer.groups.begin(), peer.groups.end(), [&](gid_t g) { return rule.gids.count(g) != 0; });
}

}  // namespace kortti::ipc
