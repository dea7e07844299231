#pragma once

// Who is on the other end of a local socket, as the kernel says, and lists
// of who may do something, as the configuration says: the main socket's
// [access] rules and each TLS upstream's `access` are the same kind of list.

#include <sys/types.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kortti {

struct PeerCredentials {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  std::vector<gid_t> groups;  // primary and supplementary
};

// SO_PEERCRED and SO_PEERGROUPS of a connected Unix socket. Nothing when the
// kernel does not answer (errno set): such a peer is refused, never taken
// for uid 0.
[[nodiscard]] std::optional<PeerCredentials> peer_credentials(int fd);

// Entries "*", "uid:N", "user:NAME", "gid:N", "group:NAME"; names are
// resolved when the list is parsed.
class Principals {
 public:
  Principals() = default;  // nobody
  // Throws std::invalid_argument naming the entry it cannot use.
  static Principals parse(const std::vector<std::string>& entries);
  static Principals anyone();

  [[nodiscard]] bool includes(const PeerCredentials& peer) const;
  // Whether includes() may look at the peer's groups: entries by gid or
  // group name. A caller whose groups cost a lookup (a TCP peer's, from the
  // account database) need not make it otherwise.
  [[nodiscard]] bool names_groups() const { return !anyone_ && !gids_.empty(); }
  bool operator==(const Principals&) const = default;

 private:
  bool anyone_ = false;
  std::set<uid_t> uids_;
  std::set<gid_t> gids_;
};

}  // namespace kortti
