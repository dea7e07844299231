#include <spdlog/spdlog.h>

#include "ipc/connection.hpp"
#include "ipc/core.hpp"

namespace kortti::ipc {

namespace {

std::string short_id(const Json& id) {
  std::string s = to_std(id.dump());
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

}  // namespace

Call::Call(Core& core, const std::shared_ptr<Connection>& connection, Request request)
    : core_(core), connection_(connection), request_(std::move(request)), peer_(connection->peer()) {}

Call::~Call() {
  if (pin_gate_) pin_gate_->release(peer_.uid);
}

bool Call::deliverable() const {
  if (answered_) return false;
  auto connection = connection_.lock();
  return connection && connection->is_open();
}

service::Caller Call::caller() const {
  service::Caller caller;
  caller.uid = peer_.uid;
  caller.gid = peer_.gid;
  caller.pid = peer_.pid;
  caller.connection = peer_.connection;
  caller.client = peer_.client;
  caller.stop = stop_token();
  caller.listening = [weak = weak_from_this()] {
    auto self = weak.lock();
    return self && self->deliverable();
  };
  return caller;
}

bool Call::respond(Json result) {
  // A request that sent a member as an attachment gets the result member of
  // the same name back as one (protocol.md).
  WipingString attachment;
  bool attached = false;
  if (!request_.attachment.empty() && result.is_object()) {
    auto it = result.find(wstr(request_.attachment));
    if (it != result.end() && it->is_string()) {
      attachment = std::move(it->get_ref<WipingString&>());
      result.erase(it);
      attached = true;
    }
  }
  Json message = make_result(request_.id, std::move(result));
  if (attached) message["attachment"] = {{"name", wstr(request_.attachment)}, {"bytes", attachment.size()}};
  return finish(message, "ok", std::string_view(attachment.data(), attachment.size()));
}

bool Call::fail(const Error& error) { return finish(make_error(request_.id, error), reason_of(error.code())); }

bool Call::finish(const Json& message, std::string_view outcome, std::string_view attachment) {
  if (answered_) return false;
  answered_ = true;
  if (deadline_) deadline_->cancel();
  auto connection = connection_.lock();
  const bool delivered = connection && connection->is_open() && connection->send(message, attachment);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_).count();
  if (core_.log_budget.allow(peer_.uid))
    spdlog::info("conn={} uid={} pid={} {} id={} -> {}{} ({} ms)", peer_.connection, peer_.uid, peer_.pid,
                 request_.method, short_id(request_.id), outcome, delivered ? "" : " (client gone)", ms);
  if (connection) connection->call_done(this);
  return delivered;
}

void Call::arm_deadline(std::chrono::milliseconds timeout) {
  deadline_.emplace(core_.io, timeout);
  deadline_->async_wait([weak = weak_from_this(), timeout](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->answered_) return;
    self->stop_.request_stop();
    self->fail(Error(Errc::token_busy, "the request did not finish within " + std::to_string(timeout.count() / 1000) +
                                           " s; the card may be busy"));
  });
}

void Call::cancel() {
  stop_.request_stop();
  if (deadline_) deadline_->cancel();
}

}  // namespace kortti::ipc
