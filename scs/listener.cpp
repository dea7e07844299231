// The HTTPS side of the SCS interface: accepting on the loopback addresses,
// the TLS handshake, HTTP/1.1 requests (Boost.Beast) and the defences that
// come before any signature. One coroutine per connection on the io thread.

#include <spdlog/spdlog.h>

#include <unistd.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <set>

#include "common/loopback_peer.hpp"
#include "scs/handler.hpp"
#include "scs/scs.hpp"

namespace kortti::scs {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kReadTimeout = std::chrono::seconds(30);  // a request's body, an answer's write
constexpr auto kIdleTimeout = std::chrono::seconds(5);   // a request's headers, after the handshake or an answer

using Stream = beast::ssl_stream<beast::tcp_stream>;

// A connection while its signature runs. Nothing is to come from a page
// that waits for its answer, so a read that ends in an error means the page
// is gone (its tab or the browser closed).
struct Watch {
  explicit Watch(const asio::any_io_executor& executor) : ended(executor, asio::steady_timer::time_point::max()) {}
  std::stop_source gone;
  bool reading = true;
  asio::steady_timer ended;  // cancelled when the read ends
};

}  // namespace

struct Listener::Impl : std::enable_shared_from_this<Listener::Impl> {
  Impl(asio::io_context& context, service::Service& service, Options given, uid_t user)
      : io(context),
        options(std::move(given)),
        owner(user),
        handler(service, options, owner),
        tls(asio::ssl::context::tls_server) {}

  asio::io_context& io;
  Options options;
  uid_t owner;
  Handler handler;  // holds a reference to `options`
  asio::ssl::context tls;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::set<std::shared_ptr<Stream>> open;
  std::set<const Stream*> busy;  // connections whose request is not yet answered
  // Connections waiting for their next request's headers, since when.
  std::map<const Stream*, std::chrono::steady_clock::time_point> waiting;
  bool stopping = false;
  std::chrono::steady_clock::time_point last_refusal_log{};
  std::size_t unlogged_refusals = 0;

  void load_credentials() {
    for (const auto& [what, path] : {std::pair{"certificate", &options.certificate}, std::pair{"key", &options.key}})
      if (::access(path->c_str(), R_OK) != 0)
        throw StartError("[scs] " + std::string(what) + " " + *path + " cannot be read: " + std::strerror(errno) +
                         " (kortti scs setup makes it)");
    boost::system::error_code ec;
    (void)tls.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                              asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                              asio::ssl::context::no_tlsv1_1,
                          ec);
    (void)tls.use_certificate_chain_file(options.certificate, ec);
    if (ec) throw StartError("[scs] certificate " + options.certificate + " is not a PEM certificate: " + ec.message());
    (void)tls.use_private_key_file(options.key, asio::ssl::context::pem, ec);
    if (ec) throw StartError("[scs] key " + options.key + " is not a PEM private key: " + ec.message());
    if (SSL_CTX_check_private_key(tls.native_handle()) != 1)
      throw StartError("[scs] key " + options.key + " is not the key of " + options.certificate);
  }

  void bind(const asio::ip::address& address) {
    auto acceptor = std::make_unique<tcp::acceptor>(io);
    const tcp::endpoint endpoint(address, options.port);
    boost::system::error_code ec;
    (void)acceptor->open(endpoint.protocol(), ec);
    if (!ec && address.is_v6()) (void)acceptor->set_option(asio::ip::v6_only(true), ec);
    if (!ec) (void)acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) (void)acceptor->bind(endpoint, ec);
    if (!ec) (void)acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      // A machine without IPv6 on loopback still serves 127.0.0.1.
      if (address.is_v6() &&
          (ec == asio::error::address_family_not_supported || ec == boost::system::errc::address_not_available)) {
        spdlog::warn("scs: ::1 is not available ({}); serving 127.0.0.1 only", ec.message());
        return;
      }
      throw StartError("scs: cannot listen on " + endpoint.address().to_string() + " port " +
                       std::to_string(options.port) + ": " + ec.message());
    }
    acceptors.push_back(std::move(acceptor));
  }

  Task<> accept(tcp::acceptor& acceptor) {
    auto self = shared_from_this();
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (stopping) co_return;
      if (ec) {
        // EMFILE and its kind pass; the next connection may fit.
        spdlog::warn("scs: accept failed: {}", ec.message());
        asio::steady_timer pause(io, std::chrono::milliseconds(100));
        co_await pause.async_wait(asio::use_awaitable);
        continue;
      }
      // A connection that cannot be set up is dropped; the loop goes on
      // (an exception here would end it, unnoticed, for good).
      try {
        if (!admitted(socket)) continue;
        auto stream = std::make_shared<Stream>(std::move(socket), tls);
        open.insert(stream);
        auto session = serve(stream);
        asio::co_spawn(io, std::move(session), asio::detached);
      } catch (const std::exception& e) {
        spdlog::error("scs: cannot set up a connection: {}", e.what());
      }
    }
  }

  // The connection that has waited longest for its next request, if one
  // does: closed to make room, so that connections a page opens and leaves
  // idle cannot keep another page (or the EHR) out.
  bool evict_idlest() {
    std::shared_ptr<Stream> idlest;
    auto since = std::chrono::steady_clock::time_point::max();
    for (const auto& stream : open)
      if (auto it = waiting.find(stream.get()); it != waiting.end() && it->second < since) {
        since = it->second;
        idlest = stream;
      }
    if (!idlest) return false;
    waiting.erase(idlest.get());
    boost::system::error_code ec;
    (void)beast::get_lowest_layer(*idlest).socket().close(ec);
    return true;
  }

  // The connection's owner is the instance's user, and there is room (the
  // owner first: another user's connection must not close one of ours to
  // make room it is then refused).
  bool admitted(tcp::socket& socket) {
    boost::system::error_code peer_error;
    boost::system::error_code local_error;
    const auto peer = socket.remote_endpoint(peer_error);
    const auto local = socket.local_endpoint(local_error);
    if (peer_error || local_error) return false;
    const auto uid = peer_uid(peer, local);
    if (!uid || *uid != owner) {
      refused(uid ? "uid " + std::to_string(*uid) + " is not this instance's user"
                  : "the kernel knows no owner of its client's end (closed already?)");
      return false;
    }
    if (open.size() >= options.max_connections && !evict_idlest()) {
      refused(std::to_string(open.size()) +
              " connections are open, each with a request under way ([scs] max_connections)");
      return false;
    }
    return true;
  }

  // A refused connection is logged, at most once a second with a count of
  // those not logged, so that a flood of them does not flood the log.
  void refused(const std::string& why) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_refusal_log < std::chrono::seconds(1)) {
      ++unlogged_refusals;
      return;
    }
    spdlog::warn("scs: refused a connection: {}{}", why,
                 unlogged_refusals > 0 ? " (and " + std::to_string(unlogged_refusals) + " more since the last line)"
                                       : std::string());
    last_refusal_log = now;
    unlogged_refusals = 0;
  }

  Task<> serve(std::shared_ptr<Stream> stream) {
    auto self = shared_from_this();
    try {
      co_await session(*stream);
    } catch (const std::exception& e) {
      spdlog::debug("scs: connection ended: {}", e.what());
    }
    busy.erase(stream.get());
    waiting.erase(stream.get());
    open.erase(stream);
  }

  Task<> session(Stream& stream) {
    boost::system::error_code ec;
    beast::get_lowest_layer(stream).expires_after(kHandshakeTimeout);
    co_await stream.async_handshake(asio::ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      spdlog::debug("scs: TLS handshake failed: {}", ec.message());
      co_return;
    }
    // Bounded as a request is: chunk extensions and trailers, which the
    // parser's header and body limits do not count, cannot grow it further.
    beast::flat_buffer buffer(kHeaderLimit + options.max_body_bytes + kHeaderLimit);
    for (;;) {
      Parser parser;
      bound(parser, options);
      // The headers first: every check that needs no body is made before
      // the body is read (or memory is set aside for it). They come within
      // the idle time of the handshake or of the last answer: a connection
      // opened and left idle holds its slot no longer (and is the first to
      // go when the slots are full).
      waiting[&stream] = std::chrono::steady_clock::now();
      beast::get_lowest_layer(stream).expires_after(kIdleTimeout);
      co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      waiting.erase(&stream);
      // A length declared over the limit ends the headers' read: they are
      // screened all the same, a probe first.
      if (ec == http::error::body_limit) {
        if (!handler.probe(parser.get())) co_await refuse_too_large(stream, parser);
        co_return;
      }
      if (ec) co_return;                       // closed, idle, timed out, or not HTTP
      if (handler.probe(parser.get())) break;  // unanswered
      busy.insert(&stream);                    // until its answer is written (serve() on the way out)
      std::optional<Response> early = handler.screen(parser);
      if (early) {
        beast::get_lowest_layer(stream).expires_after(kReadTimeout);
        co_await http::async_write(stream, *early, asio::redirect_error(asio::use_awaitable, ec));
        busy.erase(&stream);
        if (ec || !early->keep_alive() || stopping) break;
        continue;
      }
      beast::get_lowest_layer(stream).expires_after(kReadTimeout);
      co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::body_limit) {
        co_await refuse_too_large(stream, parser);
        co_return;
      }
      if (ec) co_return;
      std::optional<Response> response = co_await sign_watched(stream, buffer, parser.release());
      if (!response) co_return;
      beast::get_lowest_layer(stream).expires_after(kReadTimeout);
      co_await http::async_write(stream, *response, asio::redirect_error(asio::use_awaitable, ec));
      busy.erase(&stream);
      if (ec || !response->keep_alive() || stopping) break;
    }
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
    co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
  }

  // A signature may wait for the user as long as the request may take; a
  // page that goes meanwhile takes its dialog with it: the connection is
  // read while the handler works, and its end stops the request. Nothing
  // when the request failed or the page went.
  Task<std::optional<Response>> sign_watched(Stream& stream, beast::flat_buffer& buffer, Request request) {
    beast::get_lowest_layer(stream).expires_never();
    auto watch = std::make_shared<Watch>(stream.get_executor());
    stream.async_read_some(buffer.prepare(kHeaderLimit), [watch, &buffer](boost::system::error_code e, std::size_t n) {
      buffer.commit(n);  // a request sent ahead is the next one's start
      if (e && e != asio::error::operation_aborted) watch->gone.request_stop();
      watch->reading = false;
      watch->ended.cancel();
    });
    std::optional<Response> response;
    try {
      response = co_await handler.sign(std::move(request), watch->gone.get_token());
    } catch (const std::exception& e) {
      // The read below must end before this frame and the buffer do.
      spdlog::warn("scs: a /sign request failed: {}", e.what());
    }
    // A read whose bytes were in flight when it was cancelled may start
    // another at the socket: cancel until the read has ended.
    boost::system::error_code ec;
    while (watch->reading) {
      beast::get_lowest_layer(stream).cancel();
      watch->ended.expires_after(std::chrono::milliseconds(100));
      co_await watch->ended.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (watch->gone.stop_requested()) response.reset();
    co_return response;
  }

  Task<> refuse_too_large(Stream& stream, const Parser& parser) {
    Response refused = handler.too_large(parser);
    boost::system::error_code ec;
    beast::get_lowest_layer(stream).expires_after(kReadTimeout);
    co_await http::async_write(stream, refused, asio::redirect_error(asio::use_awaitable, ec));
  }
};

Listener::Listener(asio::io_context& io, service::Service& service, Options options, uid_t owner)
    : impl_(std::make_shared<Impl>(io, service, std::move(options), owner)) {}

Listener::~Listener() { stop(); }

void Listener::start() {
  impl_->load_credentials();
  impl_->bind(asio::ip::make_address("127.0.0.1"));
  impl_->bind(asio::ip::make_address("::1"));
  for (auto& acceptor : impl_->acceptors) {
    auto loop = impl_->accept(*acceptor);
    asio::co_spawn(impl_->io, std::move(loop), asio::detached);
  }
  spdlog::info("scs: serving https://localhost:{} for {} origin(s)", impl_->options.port,
               impl_->options.allowed_origins.size());
}

void Listener::stop_accepting() {
  if (impl_->stopping) return;
  impl_->stopping = true;
  boost::system::error_code ec;
  for (auto& acceptor : impl_->acceptors) (void)acceptor->close(ec);
  // A connection between requests has nothing to finish; one whose
  // request is under way ends once it is answered (session()).
  for (const auto& stream : impl_->open)
    if (!impl_->busy.contains(stream.get())) (void)beast::get_lowest_layer(*stream).socket().close(ec);
}

std::size_t Listener::requests_in_progress() const { return impl_->busy.size(); }

void Listener::stop() {
  stop_accepting();
  boost::system::error_code ec;
  for (const auto& stream : impl_->open) (void)beast::get_lowest_layer(*stream).socket().close(ec);
  impl_->handler.cancel_all();
}

}  // namespace kortti::scs
