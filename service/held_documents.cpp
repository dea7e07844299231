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
  if (bytes == 0) return {};  // a detached CMS signature: nothing of it is held
  std::lock_guard lock(state_->mutex);
  State& s = *state_;
  const auto mine = s.per_uid.find(uid);
  const std::size_t held_by_uid = mine == s.per_uid.end() ? 0 : mine->second;
  if (s.max_bytes_per_uid != 0 && held_by_uid != 0 && held_by_uid + bytes > s.max_bytes_per_uid)
    throw Error(Errc::service_unavailable,
                "uid=" + std::to_string(uid) + " holds " + std::to_string(held_by_uid) +
                    " bytes of documents waiting for their signature; this one's " + std::to_string(bytes) +
                    " would pass the " + std::to_string(s.max_bytes_per_uid) +
                    " one uid may hold (twice ipc.max_message_bytes); try again when they are answered");
  // Not how much: that is other users' business.
  if (s.max_bytes != 0 && s.bytes != 0 && s.bytes + bytes > s.max_bytes)
    throw Error(Errc::service_unavailable, "this document's " + std::to_string(bytes) +
                                               " bytes would pass what korttid may hold of documents waiting for "
                                               "their signature (signature.max_held_bytes); try again shortly");
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
  // Taken out first: if this hold outlived HeldDocuments, the state (and its
  // mutex) ends with it, after the lock.
  const std::shared_ptr<State> state = std::move(state_);
  if (!state) return;
  std::lock_guard lock(state->mutex);
  state->bytes -= bytes_;
  const auto mine = state->per_uid.find(uid_);
  if (mine != state->per_uid.end() && (mine->second -= bytes_) == 0) state->per_uid.erase(mine);
  bytes_ = 0;
}

}  // namespace kortti::service
