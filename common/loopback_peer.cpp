#include "common/loopback_peer.hpp"

#include <arpa/inet.h>
#include <grp.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/owned_fd.hpp"

namespace kortti {

namespace {

// An endpoint as the kernel prints it: the address as 32-bit words each in
// this machine's byte order, in hex; a colon; the port in hex.
std::string kernel_text(const boost::asio::ip::tcp::endpoint& e) {
  std::string out;
  char word[9];
  auto words = [&](const unsigned char* bytes, std::size_t n) {
    for (std::size_t i = 0; i < n; i += 4) {
      std::uint32_t v = 0;
      std::memcpy(&v, bytes + i, 4);
      std::snprintf(word, sizeof word, "%08X", v);
      out += word;
    }
  };
  if (e.address().is_v4()) {
    const auto bytes = e.address().to_v4().to_bytes();
    words(bytes.data(), bytes.size());
  } else {
    const auto bytes = e.address().to_v6().to_bytes();
    words(bytes.data(), bytes.size());
  }
  char port[6];
  std::snprintf(port, sizeof port, "%04X", static_cast<unsigned>(e.port()));
  return out + ":" + port;
}

// An address into sock_diag's four 32-bit words, in network byte order.
void put_address(const boost::asio::ip::address& a, std::uint32_t (&words)[4]) {
  if (a.is_v4()) {
    const auto bytes = a.to_v4().to_bytes();
    std::memcpy(words, bytes.data(), bytes.size());
  } else {
    const auto bytes = a.to_v6().to_bytes();
    std::memcpy(words, bytes.data(), bytes.size());
  }
}

bool same_socket(const inet_diag_sockid& a, const inet_diag_sockid& b) {
  return a.idiag_sport == b.idiag_sport && a.idiag_dport == b.idiag_dport &&
         std::memcmp(a.idiag_src, b.idiag_src, sizeof a.idiag_src) == 0 &&
         std::memcmp(a.idiag_dst, b.idiag_dst, sizeof a.idiag_dst) == 0;
}

// `id`'s two IPv4 addresses as IPv6 ones (::ffff:a.b.c.d): a dual-stack
// client (Java's and .NET's sockets by default) reaching 127.0.0.1 is an
// IPv6 socket, which the kernel names so.
inet_diag_sockid v4_mapped(inet_diag_sockid id) {
  for (std::uint32_t* words : {id.idiag_src, id.idiag_dst}) {
    const std::uint32_t v4 = words[0];
    words[0] = 0;
    words[1] = 0;
    words[2] = htonl(0xffff);
    words[3] = v4;
  }
  return id;
}

boost::asio::ip::tcp::endpoint v4_mapped(const boost::asio::ip::tcp::endpoint& e) {
  return {boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, e.address().to_v4()), e.port()};
}

// The kernel's answer to the request for `asked` (IPv4 addresses when
// `v4`): netlink messages, each a header and its data, 4-byte aligned (read
// by copying: the NLMSG_* macros are C casts).
DiagAnswer read_answer(const char* buffer, std::size_t end, const inet_diag_sockid& asked, bool v4) {
  constexpr auto align = [](std::size_t v) { return (v + 3) & ~std::size_t{3}; };
  const std::size_t header_size = align(sizeof(nlmsghdr));
  std::size_t at = 0;
  while (end - at >= header_size) {
    nlmsghdr h{};
    std::memcpy(&h, buffer + at, sizeof h);
    if (h.nlmsg_len < header_size || h.nlmsg_len > end - at) break;
    const char* data = buffer + at + header_size;
    const std::size_t data_size = h.nlmsg_len - header_size;
    if (h.nlmsg_type == NLMSG_ERROR) {
      if (data_size < sizeof(nlmsgerr)) break;
      nlmsgerr error{};
      std::memcpy(&error, data, sizeof error);
      return {error.error == -ENOENT ? DiagAnswer::none : DiagAnswer::unavailable};
    }
    if (h.nlmsg_type == SOCK_DIAG_BY_FAMILY && data_size >= sizeof(inet_diag_msg)) {
      inet_diag_msg found{};
      std::memcpy(&found, data, sizeof found);
      // The kernel's lookup falls back to a listener on the port when the
      // client's end is gone: only the very socket asked for counts.
      const bool asked_for = same_socket(found.id, asked) ||
                             (v4 && found.idiag_family == AF_INET6 && same_socket(found.id, v4_mapped(asked)));
      if (found.idiag_state == TCP_LISTEN || !asked_for) return {DiagAnswer::none};
      // A closed client's end (TIME_WAIT, or FIN_WAIT2 after close()) is
      // kept by the kernel without its socket: no inode, uid 0. No owner.
      if (found.idiag_inode == 0) return {DiagAnswer::none};
      return {DiagAnswer::found, static_cast<uid_t>(found.idiag_uid), static_cast<ino_t>(found.idiag_inode)};
    }
    const std::size_t step = align(h.nlmsg_len);
    if (step > end - at) break;
    at += step;
  }
  return {DiagAnswer::unavailable};
}

}  // namespace

std::optional<uid_t> socket_owner(const std::string& table, const boost::asio::ip::tcp::endpoint& peer,
                                  const boost::asio::ip::tcp::endpoint& local) {
  const std::string want_local = kernel_text(peer);
  const std::string want_remote = kernel_text(local);
  std::istringstream lines(table);
  std::string line;
  std::getline(lines, line);  // the header
  while (std::getline(lines, line)) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ...
    std::istringstream fields(line);
    std::string slot, local_address, remote_address, state, queues, timer, retransmits;
    long long uid = -1;
    long long timeout = 0;
    unsigned long long inode = 0;
    if (!(fields >> slot >> local_address >> remote_address >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode))
      continue;
    if (local_address != want_local || remote_address != want_remote || uid < 0) continue;
    // A closed client's end (TIME_WAIT, or FIN_WAIT2 after close()) is kept
    // by the kernel without its socket: inode 0, printed as uid 0. No owner.
    if (inode == 0) return std::nullopt;
    return static_cast<uid_t>(uid);
  }
  return std::nullopt;
}

DiagAnswer diag_owner(const boost::asio::ip::tcp::endpoint& peer, const boost::asio::ip::tcp::endpoint& local) {
  const OwnedFd fd(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (fd.get() < 0) return {DiagAnswer::unavailable};
  // The kernel answers while it handles the request; the bound is for a
  // kernel that never does.
  const timeval patience{1, 0};
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);

  struct {
    nlmsghdr header;
    inet_diag_req_v2 body;
  } request{};
  request.header.nlmsg_len = sizeof request;
  request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  request.header.nlmsg_flags = NLM_F_REQUEST;  // one socket, not a dump
  request.body.sdiag_family = peer.address().is_v4() ? AF_INET : AF_INET6;
  request.body.sdiag_protocol = IPPROTO_TCP;
  request.body.idiag_states = ~0U;
  // The client's socket: its own end ("src") is the connection's peer.
  request.body.id.idiag_sport = htons(peer.port());
  request.body.id.idiag_dport = htons(local.port());
  put_address(peer.address(), request.body.id.idiag_src);
  put_address(local.address(), request.body.id.idiag_dst);
  request.body.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  request.body.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd.get(), &request, sizeof request, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) !=
      static_cast<ssize_t>(sizeof request))
    return {DiagAnswer::unavailable};

  char buffer[8192];
  ssize_t n = 0;
  do n = ::recv(fd.get(), buffer, sizeof buffer, 0);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return {DiagAnswer::unavailable};
  return read_answer(buffer, static_cast<std::size_t>(n), request.body.id, peer.address().is_v4());
}

std::optional<uid_t> peer_uid(const boost::asio::ip::tcp::endpoint& peer, const boost::asio::ip::tcp::endpoint& local) {
  const DiagAnswer asked = diag_owner(peer, local);
  if (asked.kind == DiagAnswer::found) return asked.uid;
  if (asked.kind == DiagAnswer::none) return std::nullopt;
  // Without sock_diag (a kernel built without it), the printed table; it
  // grows with every TCP socket of the machine.
  const auto table = [](const char* path) {
    std::ifstream in(path);
    std::ostringstream text;
    if (in) text << in.rdbuf();
    return text.str();
  };
  if (!peer.address().is_v4()) return socket_owner(table("/proc/net/tcp6"), peer, local);
  if (auto owner = socket_owner(table("/proc/net/tcp"), peer, local)) return owner;
  return socket_owner(table("/proc/net/tcp6"), v4_mapped(peer), v4_mapped(local));
}

std::optional<PeerCredentials> loopback_peer_credentials(int fd, bool groups) {
  sockaddr_storage peer_address{};
  sockaddr_storage local_address{};
  socklen_t peer_size = sizeof peer_address;
  socklen_t local_size = sizeof local_address;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer_address), &peer_size) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&local_address), &local_size) != 0 ||
      (peer_address.ss_family != AF_INET && peer_address.ss_family != AF_INET6))
    return std::nullopt;
  boost::asio::ip::tcp::endpoint peer;
  boost::asio::ip::tcp::endpoint local;
  std::memcpy(peer.data(), &peer_address, peer_size);
  peer.resize(peer_size);
  std::memcpy(local.data(), &local_address, local_size);
  local.resize(local_size);
  const std::optional<uid_t> uid = peer_uid(peer, local);
  if (!uid) return std::nullopt;
  PeerCredentials cred;
  cred.uid = *uid;
  cred.gid = static_cast<gid_t>(-1);
  if (!groups) return cred;
  // A uid the account database does not know has no groups to be in. An
  // entry larger than the buffer (ERANGE) is asked for again in a larger one.
  std::vector<char> text(16384);
  passwd entry{};
  passwd* found = nullptr;
  int error = 0;
  while ((error = ::getpwuid_r(*uid, &entry, text.data(), text.size(), &found)) == ERANGE && text.size() < (1U << 20))
    text.resize(text.size() * 4);
  if (error != 0 || found == nullptr) return cred;
  cred.gid = entry.pw_gid;
  int count = 64;
  std::vector<gid_t> found_groups(static_cast<std::size_t>(count));
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (::getgrouplist(entry.pw_name, entry.pw_gid, found_groups.data(), &count) >= 0) {
      found_groups.resize(static_cast<std::size_t>(count));
      cred.groups = std::move(found_groups);
      return cred;
    }
    found_groups.resize(static_cast<std::size_t>(count));  // getgrouplist says how many it needs
  }
  cred.groups = {entry.pw_gid};
  return cred;
}

std::optional<boost::asio::ip::tcp::endpoint> loopback_endpoint(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  std::string host = text.substr(0, colon);
  const std::string port = text.substr(colon + 1);
  const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  unsigned number = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (ec != std::errc() || end != port.data() + port.size() || number == 0 || number > 65535) return std::nullopt;
  boost::system::error_code bad;
  const auto address = boost::asio::ip::make_address(host, bad);
  // An IPv6 address only in brackets, an IPv4 one only without.
  if (bad || !address.is_loopback() || address.is_v6() != bracketed) return std::nullopt;
  return boost::asio::ip::tcp::endpoint(address, static_cast<unsigned short>(number));
}

}  // namespace kortti
