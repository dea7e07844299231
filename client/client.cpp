#include "client/client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>
#include <system_error>

#include "common/loopback_peer.hpp"

namespace kortti::client {

namespace {

std::string duration_text(Client::Timeout t) {
  return t.count() % 1000 == 0 ? std::to_string(t.count() / 1000) + " s" : std::to_string(t.count()) + " ms";
}

}  // namespace

std::string Client::default_socket() {
  if (const char* env = std::getenv("KORTTI_SOCKET"); env != nullptr && *env != '\0') return env;
  if (const char* dir = std::getenv("XDG_RUNTIME_DIR"); dir != nullptr && *dir != '\0') {
    const std::string user = std::string(dir) + "/korttid/korttid.sock";
    if (::access(user.c_str(), F_OK) == 0) return user;
  }
  return kSystemSocket;
}

Client::Client(const std::string& socket_path, Timeout timeout) : timeout_(timeout.count() > 0 ? timeout : kForever) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) throw std::invalid_argument("socket path too long: " + socket_path);
  socket_path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "socket");
  if (timeout_ != kForever) {
    // Bounds connect() (a listener whose queue is full) and every send():
    // both then fail with EAGAIN.
    const std::int64_t ms = timeout_.count();
    const timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
    if (::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
      const int err = errno;
      ::close(fd_);
      fd_ = -1;
      throw std::system_error(err, std::generic_category(), "setsockopt SO_SNDTIMEO");
    }
  }
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw std::system_error(err, std::generic_category(), "cannot connect to korttid at " + socket_path);
  }
}

std::unique_ptr<Client> Client::adopt(int connected_fd) {
  std::unique_ptr<Client> c(new Client());
  c->fd_ = connected_fd;
  return c;
}

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

void Client::send_raw(std::string_view bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK)
        throw NoAnswer("korttid took no more of the request in " + duration_text(timeout_));
      if (err == EPIPE || err == ECONNRESET) throw_refusal_if_any();
      throw std::system_error(err, std::generic_category(), "send to korttid");
    }
    sent += static_cast<std::size_t>(n);
  }
}

std::int64_t Client::send(std::string_view method, Json params, std::string_view attach) {
  const std::int64_t id = next_id_++;
  WipingString attachment;
  if (!attach.empty()) {
    auto it = params.find(wstr(attach));
    if (it == params.end() || !it->is_string())
      throw std::invalid_argument("the attachment must be a string member of params: " + std::string(attach));
    attachment = std::move(it->get_ref<WipingString&>());
    params.erase(it);
  }
  Json request = {{"jsonrpc", "2.0"}, {"id", id}, {"method", wstr(method)}, {"params", std::move(params)}};
  if (!attach.empty()) request["attachment"] = {{"name", wstr(attach)}, {"bytes", attachment.size()}};
  WipingString line;
  try {
    line = request.dump();
  } catch (const Json::exception&) {
    // Its text names the offending byte, which may be a PIN's.
    throw std::invalid_argument("a request to korttid holds text that is not UTF-8");
  }
  line.push_back('\n');
  // dump() wrote the request, PIN and all, through a buffer on the stack.
  scrub_stack();
  send_raw(std::string_view(line.data(), line.size()));
  send_raw(std::string_view(attachment.data(), attachment.size()));
  return id;
}

namespace {

// What kortti takes of one message: korttid's largest answer is a signed
// document of its 16 MiB limit, escaped as a JSON string or attached; the
// bounds keep a peer that is not korttid from filling memory.
constexpr std::size_t kMaxLine = std::size_t{128} << 20;
constexpr std::size_t kMaxAttachment = std::size_t{128} << 20;
constexpr std::size_t kMaxNesting = 64;
constexpr std::size_t kMaxValues = 1000000;

// The length an answer's "attachment" announces (0 without one); its name in `name`.
std::size_t announced_attachment(const Json& message, WipingString& name) {
  auto it = message.find("attachment");
  if (it == message.end()) return 0;
  if (!it->is_object() || !it->contains("name") || !(*it)["name"].is_string() || !it->contains("bytes") ||
      !(*it)["bytes"].is_number_unsigned() || !message.contains("result") || !message["result"].is_object())
    throw std::runtime_error("korttid sent an attachment header that cannot be read");
  name = (*it)["name"].get_ref<const WipingString&>();
  const auto bytes = (*it)["bytes"].get<std::uint64_t>();
  if (bytes > kMaxAttachment) throw std::runtime_error("korttid announced an attachment larger than kortti takes");
  return static_cast<std::size_t>(bytes);
}

// An error without an id answers no request: korttid could not read the
// one it refuses (a message over the limit), or refuses the connection
// itself (too many connections). Followed by a close, it says why.
bool is_refusal(const Json& message) {
  const auto id = message.find("id");
  return id != message.end() && id->is_null() && message.contains("error");
}

}  // namespace

std::optional<Json> Client::take_message() {
  if (!line_) {
    const auto pos = buffer_.find('\n', scanned_);
    if (pos == WipingString::npos) {
      if (buffer_.size() > kMaxLine) throw std::runtime_error("korttid sent a line longer than kortti takes");
      scanned_ = buffer_.size();
      return std::nullopt;
    }
    const std::string_view text(buffer_.data(), pos);
    if (json_cost(text, kMaxNesting, kMaxValues) != JsonCost::fine)
      throw std::runtime_error("korttid sent a message nested deeper or holding more values than kortti takes");
    Line line;
    line.message = Json::parse(text.begin(), text.end());
    if (!line.message.is_object()) throw std::runtime_error("korttid sent a line that is not a JSON-RPC message");
    buffer_.erase(0, pos + 1);
    scanned_ = 0;
    line.attachment_bytes = announced_attachment(line.message, line.attachment_name);
    buffer_.reserve(line.attachment_bytes);
    line_ = std::move(line);
  }
  if (buffer_.size() < line_->attachment_bytes) return std::nullopt;
  Line line = std::move(*line_);
  line_.reset();
  last_refusal_.reset();
  if (is_refusal(line.message)) last_refusal_ = line.message;
  if (line.message.contains("attachment")) {
    line.message["result"][line.attachment_name] = WipingString(buffer_.data(), line.attachment_bytes);
    buffer_.erase(0, line.attachment_bytes);
  }
  return std::move(line.message);
}

std::optional<Json> Client::read_message(Timeout timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto message = take_message()) return message;
    int wait_ms = -1;
    if (timeout != kForever) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      wait_ms = static_cast<int>(std::min<std::int64_t>(left.count(), std::numeric_limits<int>::max()));
    }
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) throw std::system_error(errno, std::generic_category(), "poll");
    if (ready == 0) return std::nullopt;
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      throw_refusal_if_any();
      if (n < 0) throw std::system_error(err, std::generic_category(), "recv from korttid");
      throw std::runtime_error("korttid closed the connection");
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

void Client::throw_refusal_if_any() {
  // What korttid sent before it closed is still queued on this side.
  char chunk[65536];
  for (;;) {
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
  try {
    while (auto message = take_message()) held_.push_back(std::move(*message));
  } catch (const std::exception&) {
    // A line cut by the close: what came before it is held.
  }
  // Only the last message before the close says why: an error without an
  // id from earlier (a line korttid could not parse) did not end anything.
  if (last_refusal_) (void)result_of(*last_refusal_);  // throws its RpcError
}

std::optional<Json> Client::receive(Timeout timeout) {
  if (!held_.empty()) {
    Json m = std::move(held_.front());
    held_.pop_front();
    return m;
  }
  return read_message(timeout);
}

Json Client::wait_for(std::int64_t id, std::optional<Timeout> given) {
  const Timeout timeout = given.value_or(timeout_);
  const auto late = [&] { return NoAnswer("no answer from korttid in " + duration_text(timeout)); };
  for (auto it = held_.begin(); it != held_.end(); ++it) {
    if (it->contains("id") && (*it)["id"] == id) {
      Json answer = std::move(*it);
      held_.erase(it);
      return result_of(answer);
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    Timeout left = kForever;
    if (timeout != kForever) left = std::chrono::duration_cast<Timeout>(deadline - std::chrono::steady_clock::now());
    if (timeout != kForever && left.count() <= 0) throw late();
    auto message = read_message(left);
    if (!message) throw late();
    if (message->contains("id") && (*message)["id"] == id) return result_of(*message);
    held_.push_back(std::move(*message));
  }
}

Json Client::call(std::string_view method, Json params, std::optional<Timeout> timeout) {
  return wait_for(send(method, std::move(params)), timeout);
}

Json Client::call_attached(std::string_view method, Json params, std::string_view attach,
                           std::optional<Timeout> timeout) {
  return wait_for(send(method, std::move(params), attach), timeout);
}

std::optional<Json> Client::next_event(Timeout timeout) {
  for (auto it = held_.begin(); it != held_.end(); ++it) {
    if (!it->contains("id")) {
      Json event = std::move(*it);
      held_.erase(it);
      return event;
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    Timeout left = kForever;
    if (timeout != kForever) left = std::chrono::duration_cast<Timeout>(deadline - std::chrono::steady_clock::now());
    if (timeout != kForever && left.count() <= 0) return std::nullopt;
    auto message = read_message(left);
    if (!message) return std::nullopt;
    if (!message->contains("id")) return message;
    held_.push_back(std::move(*message));
  }
}

namespace {

// The member `key` of `object` if it is there and of the type `is` asks.
template <class Is>
const Json* member(const Json& object, const char* key, Is is) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it != object.end() && ((*it).*is)() ? &*it : nullptr;
}

}  // namespace

Json result_of(const Json& answer) {
  if (auto error = answer.find("error"); error != answer.end()) {
    // Whatever the error holds, it is reported: parts missing or of
    // another type are left out, not a second failure.
    const Json* code = member(*error, "code", &Json::is_number_integer);
    const Json* message = member(*error, "message", &Json::is_string);
    const Json* data = member(*error, "data", &Json::is_object);
    const Json* reason = data != nullptr ? member(*data, "reason", &Json::is_string) : nullptr;
    throw RpcError(code != nullptr ? code->get<int>() : 0,
                   reason != nullptr ? to_std(reason->get_ref<const WipingString&>()) : "unknown",
                   message != nullptr ? to_std(message->get_ref<const WipingString&>()) : "error",
                   data != nullptr ? *data : Json::object());
  }
  return answer.is_object() ? answer.value("result", Json()) : Json();
}

int connect_listener(const std::string& where) {
  int fd = -1;
  int rc = -1;
  if (const auto tcp = loopback_endpoint(where)) {
    fd = ::socket(tcp->protocol().family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) rc = ::connect(fd, tcp->data(), static_cast<socklen_t>(tcp->size()));
  } else {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (where.size() >= sizeof addr.sun_path) {
      errno = ENAMETOOLONG;
      return -1;
    }
    std::memcpy(addr.sun_path, where.c_str(), where.size() + 1);
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  if (fd >= 0 && rc != 0) {
    const int why = errno;
    ::close(fd);
    errno = why;
    return -1;
  }
  return fd;
}

}  // namespace kortti::client
