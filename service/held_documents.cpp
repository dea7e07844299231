#include "service/held_documents.hpp"

#include <string>
#include <utility>

#include "common/error.hpp"

namespace kortti::service {

struct HeldDocuments::State {
  std::mutex mutex;
  std::size_t max_bytes = 0;
  std::size_t max_bytes_per_uid = 0;
  std::size_t bytes = 0;
  std::map<uid_t, std::size_t> per_uid;
};

HeldDocuments::HeldDocuments(std::size_t max_bytes, std::size_t max_bytes_per_uid) : state_(std::make_shared<State>()) {
  state_->max_bytes = max_bytes;
  state_->max_bytes_per_uid = max_bytes_per_uid;
}

HeldDocuments::Hold HeldDocuments::hold(uid_t uid, std::size_t bytes) {
  std::lock_guard lock(state_->mutex);
  State& s = *state_;
  const auto mine = s.per_uid.find(uid);
  const std::size_t held_by_uid = mine == s.per_uid.end() ? 0 : mine->second;
  if (s.max_bytes_per_uid != 0 && held_by_uid != 0 && held_by_uid + bytes > s.max_bytes_per_uid)
    throw Error(Errc::service_unavailable,
                "uid=" + std::to_string(uid) + " has " + std::to_string(held_by_uid) +
                    " bytes of documents waiting for their signature, the most one uid may; try again when they "
                    "are answered");
  if (s.max_bytes != 0 && s.bytes != 0 && s.bytes + bytes > s.max_bytes)
    throw Error(Errc::service_unavailable,
                "korttid holds " + std::to_string(s.bytes) +
                    " bytes of documents waiting for their signature (signature.max_held_bytes); try again shortly");
  s.bytes += bytes;
  s.per_uid[uid] = held_by_uid + bytes;
  return Hold(state_, uid, bytes);
}

HeldDocuments::Hold::Hold(std::shared_ptr<State> state, uid_t uid, std::size_t bytes)
    : state_(std::move(state)), uid_(uid), bytes_(bytes) {}

HeldDocuments::Hold::Hold(Hold&& other) noexcept
    : state_(std::move(other.state_)), uid_(other.uid_), bytes_(std::exchange(other.bytes_, 0)) {}

HeldDocuments::Hold& HeldDocuments::Hold::operator=(Hold&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    uid_ = other.uid_;
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

HeldDocuments::Hold::~Hold() { release(); }

void HeldDocuments::Hold::release() noexcept {
  if (!state_) return;
  std::lock_guard lock(state_->mutex);
  state_->bytes -= bytes_;
  const auto mine = state_->per_uid.find(uid_);
  if (mine != state_->per_uid.end() && (mine->second -= bytes_) == 0) state_->per_uid.erase(mine);
  state_.reset();
  bytes_ = 0;
}

}  // namespace kortti::service
