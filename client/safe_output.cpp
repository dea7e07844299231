#include "client/safe_output.hpp"

#include <iostream>
#include <streambuf>
#include <string>

#include "common/encoding.hpp"

namespace kortti::cli {

namespace {

// Passes text on to `out` made displayable(), a character split between
// two writes kept until its rest arrives.
class SafeText : public std::streambuf {
 public:
  explicit SafeText(std::streambuf* out) : out_(out) {}

 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return sync() == 0 ? traits_type::not_eof(c) : c;
    const char ch = traits_type::to_char_type(c);
    return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    pending_.append(s, static_cast<std::size_t>(n));
    const std::size_t keep = utf8_incomplete_tail(pending_);
    return pass_on(pending_.size() - keep) ? n : 0;
  }
  int sync() override { return pass_on(pending_.size()) && out_->pubsync() == 0 ? 0 : -1; }

 private:
  bool pass_on(std::size_t bytes) {
    const std::string shown = displayable(std::string_view(pending_).substr(0, bytes));
    pending_.erase(0, bytes);
    return out_->sputn(shown.data(), static_cast<std::streamsize>(shown.size())) ==
           static_cast<std::streamsize>(shown.size());
  }

  std::streambuf* out_;
  std::string pending_;
};

}  // namespace

void make_output_safe() {
  // Never freed: the standard streams are flushed after static objects end.
  static auto* const out = new SafeText(std::cout.rdbuf());
  static auto* const err = new SafeText(std::cerr.rdbuf());
  std::cout.rdbuf(out);
  std::cerr.rdbuf(err);
}

}  // namespace kortti::cli
