#include "scs/peer.hpp"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace kortti::scs {

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
    if (!(fields >> slot >> local_address >> remote_address >> state >> queues >> timer >> retransmits >> uid))
      continue;
    if (local_address == want_local && remote_address == want_remote && uid >= 0) return static_cast<uid_t>(uid);
  }
  return std::nullopt;
}

std::optional<uid_t> peer_uid(const boost::asio::ip::tcp::endpoint& peer, const boost::asio::ip::tcp::endpoint& local) {
  std::ifstream in(peer.address().is_v4() ? "/proc/net/tcp" : "/proc/net/tcp6");
  if (!in) return std::nullopt;
  std::ostringstream table;
  table << in.rdbuf();
  return socket_owner(table.str(), peer, local);
}

}  // namespace kortti::scs
