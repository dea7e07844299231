#pragma once

// Internal to ipc/ (docs/architecture.md, Layering); include ipc/ipc.hpp.
#if !defined(KORTTI_COMPONENT_IPC) && !defined(KORTTI_WHITE_BOX)
#error "ipc/connection.hpp is internal to ipc/; include ipc/ipc.hpp"
#endif

#include <array>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include "ipc/core.hpp"
#include "ipc/line_buffer.hpp"

namespace kortti::ipc {

// One client connection: reads newline-delimited requests (and their
// attachments) within the size limit, keeps at most max_inflight of them
// running (then stops reading until one finishes), and writes answers and
// events in order.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Core& core, boost::asio::local::stream_protocol::socket socket, std::uint64_t id);
  ~Connection();

  void start();
  // Queues one message, and the raw bytes of its attachment if it has one
  // (protocol.md). False if the connection is closed (or just closed because
  // the client stopped reading and too much piled up).
  bool send(const Json& message, std::string_view attachment = {});
  void track(const std::shared_ptr<Call>& call);
  void call_done(const Call* call);
  void close();
  void stop_reading();
  void fail_inflight(const Error& error);

  [[nodiscard]] Peer& peer() noexcept { return peer_; }
  [[nodiscard]] std::set<std::string>& topics() noexcept { return topics_; }
  [[nodiscard]] std::size_t inflight() const noexcept { return inflight_.size(); }
  [[nodiscard]] bool is_open() const noexcept { return !closed_; }

 private:
  // False if the peer cannot be known: the connection is then refused.
  [[nodiscard]] bool read_peer_credentials();
  // Answers with `answer` (too many connections; a message that cannot be
  // framed) and, reading and dropping what still comes, closes a moment later.
  void refuse(const Json& answer);
  void discard_input();
  void arm_idle_timer();
  void read();
  void handle_lines();
  // The pending line's attachment, once all of it is buffered: into the
  // request's params (or skipped after an error); then the line is served.
  void take_attachment();
  void serve(Incoming incoming);
  void write_next();

  Core& core_;
  boost::asio::local::stream_protocol::socket socket_;
  Peer peer_;
  LineBuffer buffer_;
  std::optional<Incoming> pending_;  // a parsed line waiting for its attachment's bytes
  std::map<const Call*, std::shared_ptr<Call>> inflight_;
  std::deque<WipingString> out_;
  std::size_t out_bytes_ = 0;
  std::set<std::string> topics_;
  bool reading_ = false;
  bool handling_ = false;  // inside handle_lines(); a call answered at once must not re-enter it
  bool writing_ = false;
  bool no_more_requests_ = false;
  bool close_after_write_ = false;
  bool closed_ = false;
  bool refusing_ = false;
  std::array<char, 4096> discard_{};
  std::chrono::steady_clock::time_point last_request_;
  std::optional<boost::asio::steady_timer> timer_;  // the idle timeout, or a refusal's linger
};

}  // namespace kortti::ipc
