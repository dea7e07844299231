#pragma once

// Internal to service/ (docs/architecture.md, Layering); include service/service.hpp.
#if !defined(KORTTI_COMPONENT_SERVICE) && !defined(KORTTI_WHITE_BOX)
#error "service/held_documents.hpp is internal to service/; include service/service.hpp"
#endif

// The documents korttid holds for signatures, from their preparation until
// their answer: a prepared document waits for the card, which may take
// seconds per signature, so the documents thread's queue bound alone would
// let requests pile up behind a slow card without a bound in bytes.

#include <sys/types.h>

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>

namespace kortti::service {

class HeldDocuments {
  struct State;

 public:
  // `max_bytes` in all, `max_bytes_per_uid` for one uid; 0: no bound.
  HeldDocuments(std::size_t max_bytes, std::size_t max_bytes_per_uid);

  // Counts its bytes until it is destroyed.
  class Hold {
   public:
    Hold() = default;
    Hold(Hold&& other) noexcept;
    Hold& operator=(Hold&& other) noexcept;
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    ~Hold();

   private:
    friend class HeldDocuments;
    Hold(std::shared_ptr<State> state, uid_t uid, std::size_t bytes);
    void release() noexcept;
    std::shared_ptr<State> state_;
    uid_t uid_ = 0;
    std::size_t bytes_ = 0;
  };

  // A document of `bytes` for `uid`, or Error(service_unavailable) naming
  // the bound it would pass. A document always gets in when nothing is held
  // (in all, or for its uid).
  [[nodiscard]] Hold hold(uid_t uid, std::size_t bytes);

 private:
  std::shared_ptr<State> state_;
};

}  // namespace kortti::service
