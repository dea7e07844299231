#pragma once

// Internal to scs/ (docs/architecture.md, Layering); include scs/scs.hpp.
#if !defined(KORTTI_COMPONENT_SCS) && !defined(KORTTI_WHITE_BOX)
#error "scs/peer.hpp is internal to scs/; include scs/scs.hpp"
#endif

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

namespace kortti::scs {

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

}  // namespace kortti::scs
