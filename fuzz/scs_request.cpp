// An HTTP request to the SCS listener, as a browser or any local program
// sends it after the TLS handshake: the bytes through Beast's request parser
// bounded as the listener bounds it (scs::bound), the headers screened as
// the listener screens them (Screen::headers), then the body read and a
// /sign body turned into a SignRequest (Screen::body), the 413 answer when
// the body is over the limit; each answer serialised as it is written. A
// request the parser refuses closes the connection. Any exception is a
// finding: the listener would end the connection without an answer.

#include <spdlog/spdlog.h>

#include <sstream>

#include <boost/beast/http.hpp>

#include "fuzz/support.hpp"
#include "scs/screen.hpp"

namespace {

namespace http = boost::beast::http;
using Parser = http::request_parser<http::string_body>;

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

// Feeds the parser from `rest` until `done` or the input ends; the parser's
// error, need_more when the input ended first.
template <typename Done>
boost::beast::error_code feed(Parser& parser, boost::asio::const_buffer& rest, Done done) {
  boost::beast::error_code ec = http::error::need_more;
  while (!done() && rest.size() > 0) {
    ec = {};
    rest += parser.put(rest, ec);
    if (ec) return ec;
  }
  return done() ? boost::beast::error_code() : ec;
}

void write(const kortti::scs::Response& response) {
  std::ostringstream out;
  out << response;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kortti::scs;
  const Screen screen(options());
  try {
    Parser parser;
    bound(parser, options());
    boost::asio::const_buffer rest(data, size);
    boost::beast::error_code ec = feed(parser, rest, [&] { return parser.is_header_done(); });
    if (!ec) {
      if (auto early = screen.headers(parser.get(), 0)) {
        write(*early);
        return 0;
      }
      parser.eager(true);
      ec = feed(parser, rest, [&] { return parser.is_done(); });
    }
    if (ec == http::error::body_limit) write(screen.too_large(parser.get()));
    if (ec) return 0;
    auto read = screen.body(parser.get());
    if (auto* refused = std::get_if<Response>(&read)) write(*refused);
  } catch (const std::exception& e) {
    kortti::fuzz::unexpected_exception("scs_request", e);
  }
  return 0;
}
