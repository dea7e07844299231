#include "common/peer.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <stdexcept>
#include <string_view>

namespace kortti {

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

std::optional<PeerCredentials> peer_credentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) return std::nullopt;
  PeerCredentials peer;
  peer.uid = cred.uid;
  peer.gid = cred.gid;
  peer.pid = cred.pid;
  // A user may be in more groups than a first guess holds; the kernel says
  // how many (ERANGE) and the second call takes them all.
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 3; ++attempt) {
    len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      peer.groups = std::move(groups);
      peer.groups.push_back(peer.gid);
      return peer;
    }
    if (errno != ERANGE) break;
    groups.resize(len / sizeof(gid_t) + 1);
  }
  return std::nullopt;
}

Principals Principals::anyone() {
  Principals p;
  p.anyone_ = true;
  return p;
}

Principals Principals::parse(const std::vector<std::string>& entries) {
  Principals p;
  for (const std::string& entry : entries) {
    if (entry == "*") {
      p.anyone_ = true;
      continue;
    }
    const auto colon = entry.find(':');
    const std::string kind = entry.substr(0, colon);
    const std::string value = colon == std::string::npos ? "" : entry.substr(colon + 1);
    if (kind == "uid" && id_number<uid_t>(value)) {
      p.uids_.insert(*id_number<uid_t>(value));
    } else if (kind == "gid" && id_number<gid_t>(value)) {
      p.gids_.insert(*id_number<gid_t>(value));
    } else if (kind == "user" && !value.empty()) {
      const passwd* pw = ::getpwnam(value.c_str());
      if (pw == nullptr) throw std::invalid_argument("no such user '" + value + "'");
      p.uids_.insert(pw->pw_uid);
    } else if (kind == "group" && !value.empty()) {
      const struct group* gr = ::getgrnam(value.c_str());
      if (gr == nullptr) throw std::invalid_argument("no such group '" + value + "'");
      p.gids_.insert(gr->gr_gid);
    } else {
      throw std::invalid_argument("'" + entry +
                                  "' is not \"*\", uid:N, gid:N (N from 0 to 4294967294), user:NAME or group:NAME");
    }
  }
  return p;
}

bool Principals::includes(const PeerCredentials& peer) const {
  if (anyone_ || uids_.count(peer.uid) != 0 || gids_.count(peer.gid) != 0) return true;
  return std::any_of(peer.groups.begin(), peer.groups.end(), [&](gid_t g) { return gids_.count(g) != 0; });
}

}  // namespace kortti
