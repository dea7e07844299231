#pragma once

// Internal to ipc/ (docs/architecture.md, Layering); include ipc/ipc.hpp.
#if !defined(KORTTI_COMPONENT_IPC) && !defined(KORTTI_WHITE_BOX)
#error "ipc/core.hpp is internal to ipc/; include ipc/ipc.hpp"
#endif

// The server's insides shared by connections, calls and method handlers.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <stop_token>
#include <string>

#include <boost/asio/steady_timer.hpp>

#include "common/error.hpp"
#include "common/log_budget.hpp"
#include "common/task.hpp"
#include "ipc/ipc.hpp"
#include "ipc/jsonrpc.hpp"
#include "ipc/pin_gate.hpp"
#include "service/service.hpp"

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
  [[nodiscard]] std::size_t bytes() const noexcept { return request_.bytes; }
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
  // The caller as the service core sees it: who, and when the request is over.
  [[nodiscard]] service::Caller caller() const;

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

// A method: its params parsed into a typed request, the operation awaited,
// the result written as JSON. What it throws is the answer's error.
using Handler = Task<Json> (*)(Core& core, std::shared_ptr<Call> call);

// What a method needs korttid to run with; without it, it is not offered.
enum class Needs { nothing, policy, documents, tunnels };

struct Method {
  std::string_view name;
  MethodGroup group;
  Needs needs;
  Handler handler;
};

// The whole protocol, one line per method (methods.cpp).
std::span<const Method> protocol();

struct ScanWaiters;  // methods_tokens.cpp

class Core {
 public:
  Core(boost::asio::io_context& context, ServerOptions server_options, Services server_services);

  boost::asio::io_context& io;
  ServerOptions options;
  Services services;
  std::map<std::string_view, const Method*, std::less<>> methods;  // what this korttid offers
  // Open connections are owned here until they close: a connection that
  // paused reading (too many requests in flight) has no pending I/O to keep
  // it alive.
  std::map<std::uint64_t, std::shared_ptr<Connection>> connections;
  std::uint64_t next_connection = 1;
  std::size_t refusing = 0;  // connections being told "too many" before they close
  std::shared_ptr<PinGate> pin_gate;
  std::shared_ptr<ScanWaiters> scan_waiters;
  LogBudget log_budget;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  bool stopping = false;

  void dispatch(const std::shared_ptr<Connection>& connection, Request request);
  // Runs the method of a call that is tracked and has its deadline.
  void run(const std::shared_ptr<Call>& call);
  // Who holds a session is the holder's and the admins' business: other
  // clients learn that a token is logged in, not by whom.
  [[nodiscard]] bool may_see_session_owner(const Peer& peer, uid_t owner) const {
    return peer.uid == owner || options.access.allows(peer, MethodGroup::admin);
  }
  void publish(std::string_view topic, Json params);
  [[nodiscard]] service::Service& service() const { return *services.service; }
};

}  // namespace kortti::ipc
