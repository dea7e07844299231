#include "ipc/pin_gate.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "ipc/core.hpp"

namespace kortti::ipc {

void PinGate::admit(const std::shared_ptr<Call>& call) {
  PerUid& uid = uids_[call->peer().uid];
  if (uid.running < limit_ && uid.waiting.empty()) {
    ++uid.running;
    call->hold_pin_slot(shared_from_this());
    run_(call);
    return;
  }
  if (!uid.waiting.empty() && uid.waiting_bytes + call->bytes() > max_waiting_bytes_) {
    (void)call->fail(Error(Errc::service_unavailable,
                           "uid " + std::to_string(call->peer().uid) + " has " + std::to_string(uid.waiting.size()) +
                               " requests with a PIN waiting (" + std::to_string(uid.waiting_bytes) +
                               " bytes, the most korttid holds for one user); try again when they have finished"));
    return;
  }
  spdlog::debug("conn={} uid={}: {} waits for a PIN slot ({} running)", call->peer().connection, call->peer().uid,
                call->method(), uid.running);
  uid.waiting.push_back({call, call->bytes()});
  uid.waiting_bytes += call->bytes();
}

void PinGate::release(uid_t uid) {
  auto it = uids_.find(uid);
  if (it == uids_.end()) return;
  if (it->second.running > 0) --it->second.running;
  // Not from inside the destructor that released the slot: later.
  boost::asio::post(io_, [weak = weak_from_this(), uid] {
    if (auto self = weak.lock()) self->run_next(uid);
  });
}

void PinGate::run_next(uid_t uid) {
  auto it = uids_.find(uid);
  if (it == uids_.end()) return;
  PerUid& state = it->second;
  while (state.running < limit_ && !state.waiting.empty()) {
    std::shared_ptr<Call> call = state.waiting.front().call.lock();
    state.waiting_bytes -= state.waiting.front().bytes;
    state.waiting.pop_front();
    // Answered meanwhile (its deadline passed, its client left): it never runs.
    if (!call || call->answered()) continue;
    ++state.running;
    call->hold_pin_slot(shared_from_this());
    run_(call);
  }
  if (state.running == 0 && state.waiting.empty()) uids_.erase(it);
}

std::size_t PinGate::running(uid_t uid) const {
  auto it = uids_.find(uid);
  return it == uids_.end() ? 0 : it->second.running;
}

std::size_t PinGate::waiting(uid_t uid) const {
  auto it = uids_.find(uid);
  return it == uids_.end() ? 0 : it->second.waiting.size();
}

}  // namespace kortti::ipc
