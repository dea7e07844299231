#pragma once

// The server's insides shared by connections, calls and method handlers.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <stop_token>
#include <string>

#include <boost/asio/steady_timer.hpp>

#include "common/error.hpp"
#include "ipc/ipc.hpp"
#include "ipc/jsonrpc.hpp"
#include "ipc/pin_gate.hpp"

namespace kortti::ipc {

class Connection;
class Core;

// One request being served. It is answered exactly once: by its handler, by
// its deadline (token_busy), or never if the client has gone.
class Call : public std::enable_shared_from_this<Call> {
 public:
  Call(Core& core, const std::shared_ptr<Connection>& connection, Request request);

  [[nodiscard]] const Json& id() const noexcept { return request_.id; }
  [[nodiscard]] const std::string& method() const noexcept { return request_.method; }
  [[nodiscard]] Json& params() noexcept { return request_.params; }
  [[nodiscard]] const Peer& peer() const noexcept { return peer_; }
  [[nodiscard]] Core& core() noexcept { return core_; }
  [[nodiscard]] std::shared_ptr<Connection> connection() const { return connection_.lock(); }
  // Fires at the deadline or when the client disconnects; work not yet
  // started on a card is then skipped.
  [[nodiscard]] std::stop_token stop_token() const noexcept { return stop_.get_token(); }
  [[nodiscard]] bool answered() const noexcept { return answered_; }
  // Whether an answer sent now would reach the client.
  [[nodiscard]] bool deliverable() const;

  // Both return whether the answer went to a connected client.
  bool respond(Json result);
  bool fail(const Error& error);

  void arm_deadline(std::chrono::milliseconds timeout);
  void cancel();  // the client went away
  // This call holds one of its uid's PIN slots (pin_gate.hpp) until it is
  // destroyed: its PIN lives no longer than its work.
  void hold_pin_slot(std::shared_ptr<PinGate> gate) { pin_gate_ = std::move(gate); }
  ~Call();

 private:
  bool finish(const Json& message, std::string_view outcome, std::string_view attachment = {});

  Core& core_;
  std::weak_ptr<Connection> connection_;
  Request request_;
  Peer peer_;
  std::stop_source stop_;
  std::optional<boost::asio::steady_timer> deadline_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  bool answered_ = false;
  std::shared_ptr<PinGate> pin_gate_;  // set while this call holds a PIN slot
};

using Handler = std::function<void(const std::shared_ptr<Call>&)>;

struct Method {
  MethodGroup group;
  Handler handler;
};

class Core {
 public:
  Core(boost::asio::io_context& context, ServerOptions server_options, Services server_services)
      : io(context),
        options(std::move(server_options)),
        services(server_services),
        pin_gate(std::make_shared<PinGate>(io, options.max_pin_requests_per_uid,
                                           [this](const std::shared_ptr<Call>& call) { run(call); })) {}

  boost::asio::io_context& io;
  ServerOptions options;
  Services services;
  std::map<std::string, Method, std::less<>> methods;
  // Open connections are owned here until they close: a connection that
  // paused reading (too many requests in flight) has no pending I/O to keep
  // it alive.
  std::map<std::uint64_t, std::shared_ptr<Connection>> connections;
  std::uint64_t next_connection = 1;
  std::size_t refusing = 0;  // connections being told "too many" before they close
  std::shared_ptr<PinGate> pin_gate;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  bool stopping = false;

  void add(std::string name, MethodGroup group, Handler handler) {
    methods.emplace(std::move(name), Method{group, std::move(handler)});
  }
  void dispatch(const std::shared_ptr<Connection>& connection, Request request);
  // Runs the method of a call that is tracked and has its deadline.
  void run(const std::shared_ptr<Call>& call);
  // Who holds a session is the holder's and the admins' business: other
  // clients learn that a token is logged in, not by whom.
  [[nodiscard]] bool may_see_session_owner(const Peer& peer, uid_t owner) const {
    return peer.uid == owner || options.access.allows(peer, MethodGroup::admin);
  }
  void publish(std::string_view topic, Json params);
};

// Installs every method of protocol.md into `core` (methods_*.cpp).
void register_system_methods(Core& core);
void register_token_methods(Core& core);
void register_sign_methods(Core& core);
void register_event_methods(Core& core);
void register_reader_methods(Core& core);
void register_policy_methods(Core& core);
void register_document_methods(Core& core);
void register_verify_methods(Core& core);
void register_batch_methods(Core& core);

}  // namespace kortti::ipc
