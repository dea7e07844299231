// Who is at the other end of a loopback TCP connection (common/loopback_peer.hpp):
// from the kernel's sock_diag on real connections, and from the printed
// table it falls back to.

#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>

#include "common/loopback_peer.hpp"

namespace kortti {
namespace {

using boost::asio::ip::make_address;
using boost::asio::ip::tcp;

// A connection on the loopback address `host`: the server's end, as the
// listener sees it.
struct Connection {
  boost::asio::io_context io;
  tcp::acceptor acceptor;
  tcp::socket client{io};
  tcp::socket server{io};

  explicit Connection(const char* host) : acceptor(io, tcp::endpoint(make_address(host), 0)) {
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
  }
};

// Both ends of a test connection have one owner, so the socket found is
// checked by its inode: the client's, not the server's end or the listener.
ino_t inode_of(tcp::socket& s) {
  struct stat st {};
  EXPECT_EQ(::fstat(s.native_handle(), &st), 0);
  return st.st_ino;
}

TEST(LoopbackPeer, TheKernelNamesTheOwnerOfTheClientsEnd) {
  for (const char* host : {"127.0.0.1", "::1"}) {
    Connection c(host);
    const auto asked = diag_owner(c.server.remote_endpoint(), c.server.local_endpoint());
    ASSERT_EQ(asked.kind, DiagAnswer::found) << host << ": this kernel has sock_diag";
    EXPECT_EQ(asked.uid, ::getuid()) << host;
    EXPECT_EQ(asked.inode, inode_of(c.client)) << host;
    EXPECT_EQ(peer_uid(c.server.remote_endpoint(), c.server.local_endpoint()), ::getuid()) << host;
    const auto server_end = diag_owner(c.server.local_endpoint(), c.server.remote_endpoint());
    ASSERT_EQ(server_end.kind, DiagAnswer::found) << host;
    EXPECT_EQ(server_end.inode, inode_of(c.server)) << host;
    // No socket on that port: not the listener either, though the kernel's
    // lookup would fall back to one on the port asked for.
    const tcp::endpoint nobody(make_address(host), c.server.remote_endpoint().port() == 1 ? 2 : 1);
    EXPECT_EQ(diag_owner(nobody, c.server.local_endpoint()).kind, DiagAnswer::none) << host;
    EXPECT_FALSE(peer_uid(nobody, c.server.local_endpoint())) << host;
    EXPECT_EQ(diag_owner(c.acceptor.local_endpoint(), nobody).kind, DiagAnswer::none) << host << ": a listener";
  }
}

// A dual-stack client (an IPv6 socket, as Java's and .NET's are by default)
// reaching the IPv4 listener: the kernel names its socket in IPv6 terms
// (::ffff:127.0.0.1), and it is the same socket.
TEST(LoopbackPeer, ADualStackClientOn127001HasItsOwner) {
  boost::asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(make_address("127.0.0.1"), 0));
  tcp::socket client(io);
  client.open(tcp::v6());
  client.set_option(boost::asio::ip::v6_only(false));
  client.connect(tcp::endpoint(make_address("::ffff:127.0.0.1"), acceptor.local_endpoint().port()));
  tcp::socket server(io);
  acceptor.accept(server);
  ASSERT_TRUE(server.remote_endpoint().address().is_v4());
  const auto asked = diag_owner(server.remote_endpoint(), server.local_endpoint());
  ASSERT_EQ(asked.kind, DiagAnswer::found);
  EXPECT_EQ(asked.uid, ::getuid());
  EXPECT_EQ(asked.inode, inode_of(client));
  EXPECT_EQ(peer_uid(server.remote_endpoint(), server.local_endpoint()), ::getuid());
}

// A client may send and close at once. Half closed it still has its owner;
// closed, its end is kept by the kernel without a socket (FIN_WAIT2 or
// TIME_WAIT, uid 0): no owner, and never root.
TEST(LoopbackPeer, AClientThatHasClosedItsEndHasNoOwner) {
  Connection c("127.0.0.1");
  const auto peer = c.server.remote_endpoint();
  const auto local = c.server.local_endpoint();
  c.client.shutdown(tcp::socket::shutdown_send);
  const auto half_closed = diag_owner(peer, local);
  ASSERT_EQ(half_closed.kind, DiagAnswer::found);
  EXPECT_EQ(half_closed.uid, ::getuid());
  c.client.close();
  EXPECT_EQ(diag_owner(peer, local).kind, DiagAnswer::none);
  EXPECT_FALSE(peer_uid(peer, local));
  c.server.close();  // both closed: the client's end in TIME_WAIT
  EXPECT_EQ(diag_owner(peer, local).kind, DiagAnswer::none);
  EXPECT_FALSE(peer_uid(peer, local));
}

// What a TCP listener knows of its client: the owner of the client's end,
// that user's groups from the account database, and no pid.
TEST(LoopbackPeer, ACredentialsReadNamesTheOwnerAndTheirGroups) {
  for (const char* host : {"127.0.0.1", "::1"}) {
    Connection c(host);
    const auto cred = loopback_peer_credentials(c.server.native_handle(), true);
    ASSERT_TRUE(cred) << host;
    // Without the groups, no lookup: the owner only.
    const auto owner = loopback_peer_credentials(c.server.native_handle(), false);
    ASSERT_TRUE(owner) << host;
    EXPECT_EQ(owner->uid, ::getuid());
    EXPECT_TRUE(owner->groups.empty());
    EXPECT_EQ(cred->uid, ::getuid()) << host;
    const passwd* me = ::getpwuid(::getuid());
    ASSERT_NE(me, nullptr);
    EXPECT_EQ(cred->gid, me->pw_gid) << host;
    EXPECT_NE(std::find(cred->groups.begin(), cred->groups.end(), me->pw_gid), cred->groups.end()) << host;
    EXPECT_EQ(cred->pid, 0) << host << ": TCP carries no pid";
  }
  // Not a TCP connection: nothing, never uid 0.
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  EXPECT_FALSE(loopback_peer_credentials(pair[0], true));
  ::close(pair[0]);
  ::close(pair[1]);
}

TEST(LoopbackPeer, AListenAddressIsALoopbackAddressAndAPort) {
  EXPECT_EQ(loopback_endpoint("127.0.0.1:18443"), tcp::endpoint(make_address("127.0.0.1"), 18443));
  EXPECT_EQ(loopback_endpoint("127.1.2.3:1"), tcp::endpoint(make_address("127.1.2.3"), 1));
  EXPECT_EQ(loopback_endpoint("[::1]:65535"), tcp::endpoint(make_address("::1"), 65535));
  for (const char* bad : {"", ":1", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:1x",
                          "127.0.0.1:+1", "0.0.0.0:1", "192.168.1.1:1", "localhost:1", "::1:1", "[::]:1",
                          "[127.0.0.1]:1", "[::1]", "/run/korttid/tls/sso.sock"})
    EXPECT_FALSE(loopback_endpoint(bad)) << bad;
}

TEST(LoopbackPeer, TheClientsEndOfALoopbackConnectionNamesItsOwner) {
  using boost::asio::ip::make_address;
  using Endpoint = boost::asio::ip::tcp::endpoint;
  // As /proc/net/tcp prints them on a little-endian machine: the listener
  // (uid 1000) on 127.0.0.1:53952 (D2C0), the client (uid 1001) on port
  // 40000 (9C40), and the server's end of their connection.
  const std::string table =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 0100007F:D2C0 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0\n"
      "   1: 0100007F:9C40 0100007F:D2C0 01 00000000:00000000 00:00000000 00000000  1001        0 2 1 0\n"
      "   2: 0100007F:D2C0 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0\n"
      // Client ends closed: in TIME_WAIT (06) and in FIN_WAIT2 (05) after
      // close(), each without its socket (inode 0, printed as uid 0).
      "   3: 0100007F:9C41 0100007F:D2C0 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0\n"
      "   4: 0100007F:9C42 0100007F:D2C0 05 00000000:00000000 03:00001770 00000000     0        0 0 3 0\n";
  const Endpoint listener(make_address("127.0.0.1"), 53952);
  EXPECT_EQ(socket_owner(table, Endpoint(make_address("127.0.0.1"), 40000), listener), 1001U);
  EXPECT_FALSE(socket_owner(table, Endpoint(make_address("127.0.0.1"), 40001), listener)) << "not root";
  EXPECT_FALSE(socket_owner(table, Endpoint(make_address("127.0.0.1"), 40002), listener));
  EXPECT_FALSE(socket_owner(table, Endpoint(make_address("127.0.0.1"), 40003), listener));
  const std::string table6 =
      "  sl  local_address                         remote_address                        st tx_queue rx_queue tr "
      "tm->when retrnsmt   uid  timeout inode\n"
      "   0: 00000000000000000000000001000000:9C40 00000000000000000000000001000000:D2C0 01 00000000:00000000 "
      "00:00000000 00000000  1002        0 4 1 0\n";
  const Endpoint listener6(make_address("::1"), 53952);
  EXPECT_EQ(socket_owner(table6, Endpoint(make_address("::1"), 40000), listener6), 1002U);
  // A dual-stack client of 127.0.0.1 is listed in tcp6, both ends mapped.
  const std::string mapped =
      "  sl  local_address                         remote_address                        st tx_queue rx_queue tr "
      "tm->when retrnsmt   uid  timeout inode\n"
      "   0: 0000000000000000FFFF00000100007F:9C40 0000000000000000FFFF00000100007F:D2C0 01 00000000:00000000 "
      "00:00000000 00000000  1003        0 5 1 0\n";
  EXPECT_EQ(socket_owner(mapped, Endpoint(make_address("::ffff:127.0.0.1"), 40000),
                         Endpoint(make_address("::ffff:127.0.0.1"), 53952)),
            1003U);
}

}  // namespace
}  // namespace kortti
