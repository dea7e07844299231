// HTTP requests to the SCS listener, as a browser or any local program sends
// them on one connection after the TLS handshake. The first byte sets the
// size of the pieces the rest arrives in, and how many signatures are
// running; then request after request, as the listener's session() reads
// them: a parser bounded as the listener's (scs::bound) reads the headers
// from what has arrived, Screen::headers answers them or lets a /sign's body
// be read, Screen::body reads that into a SignRequest, Screen::too_large
// answers a body over the limit; each answer is serialised as it is
// written, and the connection goes on while an answer keeps it alive (a
// /sign that passed is answered as if the card had signed). Any exception is a
// finding: the listener would end the connection without an answer.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "fuzz/support.hpp"
#include "scs/screen.hpp"

namespace {

namespace http = boost::beast::http;
using kortti::scs::Parser;
using kortti::scs::Response;

const kortti::scs::Options& options() {
  static const kortti::scs::Options o = [] {
    kortti::scs::Options made;
    made.allowed_origins = {"https://ehr.example.fi", "https://localhost:8443"};
    // Small, so that the fuzzer's inputs reach the limit.
    made.max_body_bytes = 1024;
    return made;
  }();
  return o;
}

// The connection's bytes, arriving a piece at a time into the listener's
// kind of buffer.
class Connection {
 public:
  Connection(const std::uint8_t* data, std::size_t size, std::size_t piece) : data_(data), size_(size), piece_(piece) {}

  // Reads into `parser` until `done`; the parser's error, or need_more
  // when the connection ran dry first.
  template <typename Done>
  boost::beast::error_code read(Parser& parser, Done done) {
    boost::beast::error_code ec;
    while (!done()) {
      if (buffer_.size() > 0) {
        ec = {};
        const std::size_t used = parser.put(buffer_.data(), ec);
        buffer_.consume(used);
        if (ec && ec != http::error::need_more) return ec;
        if (!ec && used > 0) continue;
      }
      if (!arrive()) return http::error::need_more;
    }
    return {};
  }

 private:
  bool arrive() {
    const std::size_t n = std::min(piece_, size_ - offset_);
    if (n == 0) return false;
    std::memcpy(buffer_.prepare(n).data(), data_ + offset_, n);
    buffer_.commit(n);
    offset_ += n;
    return true;
  }

  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t piece_;
  std::size_t offset_ = 0;
  boost::beast::flat_buffer buffer_;
};

// Serialised as the listener writes it; whether the connection goes on.
bool write(const Response& response) {
  std::ostringstream out;
  out << response;
  return response.keep_alive();
}

void serve(Connection& connection, std::size_t pending) {
  const kortti::scs::Screen screen(options());
  for (;;) {
    Parser parser;
    kortti::scs::bound(parser, options());
    boost::beast::error_code ec = connection.read(parser, [&] { return parser.is_header_done(); });
    if (!ec) {
      if (auto early = screen.headers(parser, pending)) {
        if (write(*early)) continue;
        return;
      }
      parser.eager(true);
      ec = connection.read(parser, [&] { return parser.is_done(); });
    }
    if (ec == http::error::body_limit) write(screen.too_large(parser.get()));
    if (ec) return;
    auto read = screen.body(parser.get());
    if (auto* refused = std::get_if<Response>(&read)) {
      write(*refused);
      return;
    }
    // The card's answer, dressed as every answer is.
    if (!write(screen.answer(parser.get(), 200, kortti::Json::object()))) return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // Pieces of 1 to 2,017 bytes; 0 to 3 signatures running (2 may wait).
  const std::size_t piece = 1 + static_cast<std::size_t>(data[0] & 0x3f) * 32;
  const std::size_t pending = data[0] >> 6;
  Connection connection(data + 1, size - 1, piece);
  try {
    serve(connection, pending);
  } catch (const std::exception& e) {
    kortti::fuzz::unexpected_exception("scs_request", e);
  }
  return 0;
}
