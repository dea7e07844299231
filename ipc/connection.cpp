#include "ipc/connection.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include <boost/asio/write.hpp>

#include "common/encoding.hpp"
#include "common/secret.hpp"

namespace kortti::ipc {

namespace asio = boost::asio;

namespace {
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kMaxAttachmentRead = 1024 * 1024;
}  // namespace

Connection::Connection(Core& core, asio::local::stream_protocol::socket socket, std::uint64_t id)
    : core_(core), socket_(std::move(socket)), buffer_(core.options.max_message_bytes) {
  peer_.connection = id;
}

Connection::~Connection() = default;

bool Connection::read_peer_credentials() {
  // Without credentials the peer would pass for uid 0: refuse it instead.
  auto credentials = peer_credentials(socket_.native_handle());
  if (!credentials) {
    spdlog::error("conn={}: cannot read the peer's credentials ({}); closing", peer_.connection, std::strerror(errno));
    return false;
  }
  static_cast<PeerCredentials&>(peer_) = std::move(*credentials);
  return true;
}

void Connection::start() {
  if (!read_peer_credentials()) {
    close();
    return;
  }
  std::size_t open = 0;
  std::size_t same_uid = 0;
  for (const auto& [id, other] : core_.connections) {
    if (other.get() == this || other->refusing_) continue;
    ++open;
    if (other->peer_.uid == peer_.uid) ++same_uid;
  }
  if (open >= core_.options.max_connections) {
    if (core_.log_budget.allow(peer_.uid))
      spdlog::warn("conn={} uid={} pid={}: refused, {} clients already connected", peer_.connection, peer_.uid,
                   peer_.pid, open);
    refuse(make_error(nullptr, Error(Errc::service_unavailable, "too many clients are connected; try again later")));
    return;
  }
  if (same_uid >= core_.options.max_connections_per_uid) {
    if (core_.log_budget.allow(peer_.uid))
      spdlog::warn("conn={} uid={} pid={}: refused, uid {} already has {} connections", peer_.connection, peer_.uid,
                   peer_.pid, peer_.uid, same_uid);
    refuse(make_error(nullptr, Error(Errc::service_unavailable,
                                     "uid " + std::to_string(peer_.uid) + " has " + std::to_string(same_uid) +
                                         " connections open, the most one user may have; close one and retry")));
    return;
  }
  if (core_.log_budget.allow(peer_.uid))
    spdlog::info("conn={} connected: uid={} gid={} pid={}", peer_.connection, peer_.uid, peer_.gid, peer_.pid);
  last_request_ = std::chrono::steady_clock::now();
  arm_idle_timer();
  read();
}

// A refusal must reach a client that is still writing: its first request
// (too many connections), or the rest of a message over the limit. Closing
// at once would fail its write, and it would never read the answer. So the
// connection stays open for a moment, reading and dropping what comes, then
// closes. Refusals in that state are bounded too.
void Connection::refuse(const Json& answer) {
  constexpr std::size_t kMaxRefusing = 64;
  constexpr auto kLinger = std::chrono::seconds(1);
  refusing_ = true;
  no_more_requests_ = true;
  if (++core_.refusing > kMaxRefusing) {
    close();
    return;
  }
  send(answer);
  timer_.emplace(core_.io, kLinger);
  timer_->async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->close();
  });
  discard_input();
}

void Connection::discard_input() {
  if (closed_) return;
  socket_.async_read_some(asio::buffer(discard_),
                          [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                            // What a refused client sends may hold a PIN.
                            wipe(self->discard_.data(), n);
                            if (self->closed_) return;
                            if (ec) {
                              if (!self->writing_) self->close();
                              self->close_after_write_ = true;
                              return;
                            }
                            self->discard_input();
                          });
}

void Connection::arm_idle_timer() {
  const auto limit = core_.options.idle_timeout;
  if (limit.count() <= 0 || closed_) return;
  timer_.emplace(core_.io, last_request_ + limit);
  timer_->async_wait([self = shared_from_this(), limit](const boost::system::error_code& ec) {
    if (ec || self->closed_) return;
    const auto idle = std::chrono::steady_clock::now() - self->last_request_;
    // A request in flight or a subscription is not idleness: the client is
    // waiting for korttid.
    if (idle >= limit && self->inflight_.empty() && self->topics_.empty()) {
      if (self->core_.log_budget.allow(self->peer_.uid))
        spdlog::info("conn={} uid={}: no request for {} s, closing", self->peer_.connection, self->peer_.uid,
                     std::chrono::duration_cast<std::chrono::seconds>(idle).count());
      self->close();
      return;
    }
    if (idle >= limit) self->last_request_ = std::chrono::steady_clock::now();
    self->arm_idle_timer();
  });
}

void Connection::read() {
  if (reading_ || closed_ || no_more_requests_ || inflight_.size() >= core_.options.max_inflight_per_connection) return;
  reading_ = true;
  // An attachment's buffer grows with the bytes that really arrive, not with
  // what its header announces: a 100-byte header must not cost 16 MiB.
  std::size_t want = kReadChunk;
  if (pending_ && pending_->attachment_bytes > buffer_.buffered())
    want = std::clamp(pending_->attachment_bytes - buffer_.buffered(), kReadChunk, kMaxAttachmentRead);
  auto space = buffer_.writable(want);
  socket_.async_read_some(asio::buffer(space.data(), space.size()),
                          [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                            self->reading_ = false;
                            if (self->closed_) return;
                            if (ec) {
                              if (ec != asio::error::eof && ec != asio::error::operation_aborted)
                                spdlog::debug("conn={} read: {}", self->peer_.connection, ec.message());
                              self->close();
                              return;
                            }
                            self->buffer_.commit(n);
                            self->handle_lines();
                            self->read();
                          });
}

void Connection::handle_lines() {
  if (handling_) return;
  handling_ = true;
  auto self = shared_from_this();
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{handling_};
  while (!closed_ && !no_more_requests_ && inflight_.size() < core_.options.max_inflight_per_connection) {
    if (pending_) {
      if (buffer_.buffered() < pending_->attachment_bytes) return;
      take_attachment();
      continue;
    }
    std::string_view line;
    const auto status = buffer_.next(line);
    if (status == LineBuffer::Status::incomplete) return;
    if (status == LineBuffer::Status::too_long) {
      if (core_.log_budget.allow(peer_.uid))
        spdlog::warn("conn={} uid={}: message over {} bytes, closing", peer_.connection, peer_.uid,
                     core_.options.max_message_bytes);
      refuse(make_error(nullptr,
                        Error(Errc::invalid_request, "the message is longer than the limit of " +
                                                         std::to_string(core_.options.max_message_bytes) + " bytes")));
      return;
    }
    last_request_ = std::chrono::steady_clock::now();
    if (line.find_first_not_of(" \t") == std::string_view::npos) {
      buffer_.consume_line();
      continue;
    }
    auto incoming = parse_request(line, core_.options.max_message_bytes);
    if (auto* request = std::get_if<Request>(&incoming.message))
      request->bytes = line.size() + incoming.attachment_bytes;
    buffer_.consume_line();
    scrub_stack();  // the parser's small-string buffers held copies of short values
    if (incoming.framing_lost) {
      if (core_.log_budget.allow(peer_.uid))
        spdlog::warn("conn={} uid={}: unusable attachment header, closing", peer_.connection, peer_.uid);
      refuse(std::get<Json>(incoming.message));
      return;
    }
    pending_ = std::move(incoming);
  }
}

void Connection::take_attachment() {
  Incoming incoming = std::move(*pending_);
  pending_.reset();
  if (auto* request = std::get_if<Request>(&incoming.message); request != nullptr && !request->attachment.empty()) {
    const auto bytes = buffer_.peek(incoming.attachment_bytes);
    // The attachment stands for a JSON string, which the parser would have
    // checked: check it here, or its bytes reach logs and answers unchecked.
    if (!valid_utf8(bytes))
      incoming.message = make_error(
          request->id,
          Error(Errc::invalid_params, "the attachment \"" + echo(request->attachment) + "\" is not valid UTF-8 text"));
    else
      put_scrubbed(request->params, request->attachment, bytes);  // it may be a PIN
  }
  buffer_.consume(incoming.attachment_bytes);
  serve(std::move(incoming));
}

void Connection::serve(Incoming incoming) {
  if (auto* error = std::get_if<Json>(&incoming.message)) {
    send(*error);
    return;
  }
  core_.dispatch(shared_from_this(), std::move(std::get<Request>(incoming.message)));
}

bool Connection::send(const Json& message, std::string_view attachment) {
  if (closed_) return false;
  WipingString text = message.dump(-1, ' ', false, Json::error_handler_t::replace);
  text.reserve(text.size() + 1 + attachment.size());
  text.push_back('\n');
  text.append(attachment);
  out_bytes_ += text.size();
  // A client that stops reading must not make the daemon buffer without bound.
  if (out_bytes_ > 2 * core_.options.max_message_bytes + 1024 * 1024) {
    if (core_.log_budget.allow(peer_.uid))
      spdlog::warn("conn={} uid={}: client is not reading its answers, closing", peer_.connection, peer_.uid);
    close();
    return false;
  }
  out_.push_back(std::move(text));
  if (!writing_) write_next();
  return true;
}

void Connection::write_next() {
  if (out_.empty() || closed_) {
    writing_ = false;
    if (close_after_write_) close();
    return;
  }
  writing_ = true;
  asio::async_write(socket_, asio::buffer(out_.front().data(), out_.front().size()),
                    [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                      if (self->closed_) return;
                      if (ec) {
                        self->close();
                        return;
                      }
                      self->out_bytes_ -= self->out_.front().size();
                      self->out_.pop_front();
                      self->write_next();
                    });
}

void Connection::track(const std::shared_ptr<Call>& call) { inflight_.emplace(call.get(), call); }

void Connection::call_done(const Call* call) {
  inflight_.erase(call);
  if (closed_ || handling_) return;
  handle_lines();
  read();
}

void Connection::stop_reading() { no_more_requests_ = true; }

void Connection::fail_inflight(const Error& error) {
  auto calls = inflight_;
  for (auto& [ptr, call] : calls) call->fail(error);
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  if (refusing_) --core_.refusing;
  if (timer_) timer_->cancel();
  auto calls = std::move(inflight_);
  inflight_.clear();
  for (auto& [ptr, call] : calls) call->cancel();
  boost::system::error_code ignored;
  socket_.shutdown(asio::socket_base::shutdown_both, ignored);
  socket_.close(ignored);
  out_.clear();
  if (!refusing_ && core_.log_budget.allow(peer_.uid)) spdlog::info("conn={} closed", peer_.connection);
  core_.connections.erase(peer_.connection);  // may drop the last reference: nothing after this
}

}  // namespace kortti::ipc
