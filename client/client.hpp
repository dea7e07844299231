#pragma once

// client/: a small blocking client for korttid's protocol (docs/protocol.md),
// used by the `kortti` CLI and by the tests.

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/json.hpp"

namespace kortti::client {

// An error answer from the daemon.
class RpcError : public std::runtime_error {
 public:
  RpcError(int code, std::string reason, const std::string& message, Json data)
      : std::runtime_error(message), code_(code), reason_(std::move(reason)), data_(std::move(data)) {}
  [[nodiscard]] int code() const noexcept { return code_; }
  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }
  [[nodiscard]] const Json& data() const noexcept { return data_; }

 private:
  int code_;
  std::string reason_;
  Json data_;
};

// korttid did not take a request, or did not answer it, within the
// client's timeout: it may be stopped, or stuck.
class NoAnswer : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Client {
 public:
  using Timeout = std::chrono::milliseconds;
  static constexpr Timeout kForever{-1};

  // The system service's socket (systemd/korttid.socket).
  static constexpr const char* kSystemSocket = "/run/korttid/korttid.sock";
  // $KORTTI_SOCKET; else $XDG_RUNTIME_DIR/korttid/korttid.sock if it exists;
  // else the system socket, kSystemSocket.
  static std::string default_socket();

  // Connects; throws std::system_error naming the path. `timeout` bounds
  // each wait on korttid: the connection (its queue full), a request it
  // does not take (NoAnswer), and, unless call() is given its own, each
  // answer (NoAnswer); kForever, or any value not above zero, waits as long
  // as it takes. korttid answers a request within its deadline
  // (ipc.request_timeout_s; a sign.batch's is batch_max_s longer): this is
  // for a korttid that cannot.
  explicit Client(const std::string& socket_path, Timeout timeout = kForever);
  // Takes over a socket already connected to korttid.
  static std::unique_ptr<Client> adopt(int connected_fd);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends one request; returns its id. The request is wiped after sending.
  // `attach` names a string member of params to send as raw bytes after the
  // line instead of inside it (protocol.md, attachments): a large document
  // then needs no JSON escaping either way. The answer's member of that name
  // comes back the same way; receive() puts it back into the result.
  std::int64_t send(std::string_view method, Json params, std::string_view attach = {});
  // Writes bytes as they are (tests use it for malformed input).
  void send_raw(std::string_view bytes);

  // The next message from the daemon, or nullopt at timeout. Throws
  // std::runtime_error when the daemon closes the connection, or its
  // RpcError when it refused the connection before closing it (here and in
  // every call below).
  std::optional<Json> receive(Timeout timeout = kForever);

  // send() and wait for that id's answer; other answers and events that
  // arrive meanwhile are kept for later receive()/next_event(). Without a
  // timeout, the client's (see the constructor).
  Json call(std::string_view method, Json params = Json::object(), std::optional<Timeout> timeout = {});
  // call(), sending params[attach] as an attachment (none if attach is empty).
  Json call_attached(std::string_view method, Json params, std::string_view attach,
                     std::optional<Timeout> timeout = {});
  // Waits for the answer to `id` (throws RpcError for an error answer,
  // NoAnswer when the timeout passes first).
  Json wait_for(std::int64_t id, std::optional<Timeout> timeout = {});

  std::optional<Json> next_event(Timeout timeout = kForever);

  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  Client() = default;
  std::optional<Json> read_message(Timeout timeout);
  // The next whole message in buffer_ (a line and its attachment), if any.
  std::optional<Json> take_message();
  // korttid closed the connection (or the send failed because it did):
  // reads what it said before closing and throws its refusal (an error
  // without an id: too many connections, a message over the limit) if it
  // sent one, else returns for the caller to report the close.
  void throw_refusal_if_any();

  int fd_ = -1;
  Timeout timeout_ = kForever;
  WipingString buffer_;
  std::size_t scanned_ = 0;  // no newline in buffer_[0, scanned_)
  struct Line {
    Json message;
    WipingString attachment_name;
    std::size_t attachment_bytes = 0;
  };
  std::optional<Line> line_;  // a message whose attachment is still arriving
  std::int64_t next_id_ = 1;
  std::deque<Json> held_;
  std::optional<Json> last_refusal_;  // the last message taken, if a refusal
};

// The `result` of an answer, or throws RpcError for an `error` answer.
Json result_of(const Json& answer);

// A connected stream to one of korttid's listeners: a Unix socket's path, or
// a loopback address and port (a TLS tunnel's TCP listener). -1 with errno
// set when it cannot connect (ENAMETOOLONG: a path too long for a socket).
int connect_listener(const std::string& where);

}  // namespace kortti::client
