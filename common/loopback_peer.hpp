#pragma once

// Who is at the other end of a loopback TCP connection. TCP has no
// SO_PEERCRED; the kernel knows the owner of the client's end, found by its
// two addresses. It is asked through sock_diag (netlink), which looks up
// that one socket. Its printed table (/proc/net/tcp, tcp6) is the fallback:
// it lists every TCP socket of the machine, and any local user can make
// that list as long as their descriptors allow, so reading it for each
// connection would cost the io thread as much.

#include <sys/types.h>

#include <optional>
#include <string>

#include <boost/asio/ip/tcp.hpp>

#include "common/peer.hpp"

namespace kortti {

// The uid owning the socket whose local end is `peer` and remote end
// `local`, from a table in /proc/net/tcp's format; none when it is not there
// or the client has closed it.
std::optional<uid_t> socket_owner(const std::string& table, const boost::asio::ip::tcp::endpoint& peer,
                                  const boost::asio::ip::tcp::endpoint& local);

// What sock_diag says of the client's end: its owner (and its socket's
// inode), that there is no such socket (or one the client has closed, which
// the kernel keeps with no inode and uid 0), or nothing (no sock_diag in
// this kernel, or it refused).
struct DiagAnswer {
  enum Kind { found, none, unavailable } kind;
  uid_t uid = 0;
  ino_t inode = 0;
};
DiagAnswer diag_owner(const boost::asio::ip::tcp::endpoint& peer, const boost::asio::ip::tcp::endpoint& local);

// The owner from sock_diag, or from the table when sock_diag is unavailable.
std::optional<uid_t> peer_uid(const boost::asio::ip::tcp::endpoint& peer, const boost::asio::ip::tcp::endpoint& local);

// The credentials of the client on the loopback TCP connection `fd`, as far
// as TCP allows: its socket's owner (peer_uid), and, with `groups`, that
// user's primary and supplementary groups as the account database has them
// (not the process's own, which TCP does not carry; a lookup that may wait
// on a directory service, so asked for only when needed); pid 0, unknown.
// Without `groups`, gid is (gid_t)-1 and groups empty. Nothing when the
// owner cannot be found: such a peer is refused, never taken for uid 0.
[[nodiscard]] std::optional<PeerCredentials> loopback_peer_credentials(int fd, bool groups);

// "127.0.0.1:18443" or "[::1]:18443" as an endpoint: an address of 127/8 or
// ::1, and a port from 1 to 65535. Nothing for anything else, a name
// included: a listener on a name would be on whatever it resolves to.
[[nodiscard]] std::optional<boost::asio::ip::tcp::endpoint> loopback_endpoint(const std::string& text);

}  // namespace kortti
