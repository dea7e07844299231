#pragma once

// Internal to scs/ (docs/architecture.md, Layering); include scs/scs.hpp.
#if !defined(KORTTI_COMPONENT_SCS) && !defined(KORTTI_WHITE_BOX)
#error "scs/peer.hpp is internal to scs/; include scs/scs.hpp"
#endif

// Who is at the other end of a loopback TCP connection. TCP has no
// SO_PEERCRED; the kernel's socket table (/proc/net/tcp, tcp6) has the
// owner of the client's end, found by its two addresses.

#include <sys/types.h>

#include <optional>
#include <string>

#include <boost/asio/ip/tcp.hpp>

namespace kortti::scs {

// The uid owning the socket whose local end is `peer` and remote end
// `local`, from a table in /proc/net/tcp's format; none when it is not there.
std::optional<uid_t> socket_owner(const std::string& table, const boost::asio::ip::tcp::endpoint& peer,
                                  const boost::asio::ip::tcp::endpoint& local);

// The same from the running kernel's tables.
std::optional<uid_t> peer_uid(const boost::asio::ip::tcp::endpoint& peer, const boost::asio::ip::tcp::endpoint& local);

}  // namespace kortti::scs
