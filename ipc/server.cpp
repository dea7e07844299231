#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <boost/asio/write.hpp>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "ipc/connection.hpp"
#include "ipc/convert.hpp"
#include "ipc/core.hpp"
#include "ipc/ipc.hpp"
#include "pkcs11/pkcs11.hpp"

namespace kortti::ipc {

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// True if a daemon answers on `path`, false if nobody does (a stale file).
// Anything else throws: taking the socket over from a daemon that is there
// but did not answer would leave two daemons, one of them unreachable.
bool someone_listens(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  int rc = 0;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } while (rc != 0 && errno == EINTR);
  const int err = errno;
  ::close(fd);
  if (rc == 0) return true;
  if (err == ECONNREFUSED || err == ENOENT) return false;
  errno = err;
  throw_errno("cannot tell whether another daemon listens on " + path);
}

}  // namespace

class Server::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& io, ServerOptions options, Services services) : core(io, std::move(options), services) {}

  Core core;
  std::optional<stream::acceptor> acceptor;
  std::string owned_path;
  std::optional<asio::steady_timer> drain_timer;
  std::optional<asio::steady_timer> accept_pause;
  bool serving = false;

  void accept() {
    acceptor->async_accept([self = shared_from_this()](const boost::system::error_code& ec, stream::socket socket) {
      if (ec == asio::error::operation_aborted || self->core.stopping || !self->acceptor->is_open()) return;
      if (ec) {
        // Out of descriptors, most likely: retrying at once would spin.
        spdlog::warn("accept: {}; retrying in 100 ms", ec.message());
        self->accept_pause.emplace(self->core.io, std::chrono::milliseconds(100));
        self->accept_pause->async_wait([self](const boost::system::error_code& e) {
          if (!e) self->accept();
        });
        return;
      } else {
        const std::uint64_t id = self->core.next_connection++;
        auto connection = std::make_shared<Connection>(self->core, std::move(socket), id);
        self->core.connections[id] = connection;
        connection->start();
      }
      self->accept();
    });
  }

  std::size_t inflight() const {
    std::size_t n = 0;
    for (auto& [id, c] : core.connections) n += c->inflight();
    return n;
  }

  void close_all() {
    for (auto& [id, c] : std::map(core.connections)) c->close();
  }
};

Server::Server(asio::io_context& io, ServerOptions options, Services services)
    : impl_(std::make_shared<Impl>(io, std::move(options), services)) {
  if (services.tokens != nullptr) {
    services.tokens->on_event([weak = std::weak_ptr<Impl>(impl_)](const pkcs11::TokenEvent& e) {
      auto self = weak.lock();
      if (!self) return;
      using T = pkcs11::TokenEvent::Type;
      const bool session = e.type == T::logged_in || e.type == T::logged_out;
      const bool pin = e.type == T::pin_changed || e.type == T::pin_unblocked;
      self->core.publish(session ? "session" : pin ? "pin" : "token", event_params(e));
    });
  }
  if (services.pcsc != nullptr) {
    services.pcsc->on_event([weak = std::weak_ptr<Impl>(impl_)](const pcsc::Event& e) {
      auto self = weak.lock();
      if (!self) return;
      using T = pcsc::Event::Type;
      if (e.type == T::reader_added || e.type == T::reader_removed) self->core.publish("reader", event_params(e));
      if (e.type == T::card_inserted || e.type == T::card_removed) self->core.publish("card", event_params(e));
    });
  }
}

Server::~Server() {
  if (impl_->acceptor) {
    boost::system::error_code ignored;
    impl_->acceptor->close(ignored);
  }
}

void Server::listen(const std::string& path, mode_t mode, std::optional<gid_t> group) {
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) throw std::invalid_argument("socket path too long: " + path);
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::exists(parent)) {
    std::filesystem::create_directories(parent);
    std::filesystem::permissions(parent, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                             std::filesystem::perms::group_exec);
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path + " exists and is not a socket");
    if (someone_listens(path)) throw std::runtime_error("another daemon is already listening on " + path);
    ::unlink(path.c_str());
  }
  auto& acceptor = impl_->acceptor.emplace(impl_->core.io);
  acceptor.open(stream());
  // Create the file with no access at all, then open it up as configured.
  const mode_t old = ::umask(0777);
  boost::system::error_code ec;
  acceptor.bind(stream::endpoint(path), ec);
  ::umask(old);
  if (ec) throw std::system_error(ec, "bind " + path);
  impl_->owned_path = path;
  if (group && ::chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) throw_errno("chown " + path);
  if (::chmod(path.c_str(), mode) != 0) throw_errno("chmod " + path);
  acceptor.listen(asio::socket_base::max_listen_connections);
  spdlog::info("listening on {}", path);
}

void Server::adopt(int fd, std::optional<mode_t> mode, std::optional<gid_t> group) {
  impl_->acceptor.emplace(impl_->core.io, stream(), fd);
  spdlog::info("serving the socket passed by systemd (fd {})", fd);
  // An admin who narrowed [ipc] socket_mode or socket_group would otherwise
  // believe fewer accounts can connect than can.
  boost::system::error_code ec;
  const std::string path = impl_->acceptor->local_endpoint(ec).path();
  struct stat st {};
  if (ec || path.empty() || ::stat(path.c_str(), &st) != 0) return;
  const mode_t has = st.st_mode & 07777;
  if (mode && has != *mode)
    spdlog::warn(
        "the socket {} systemd passed has mode {:04o}, not [ipc] socket_mode {:04o}: the socket unit's "
        "SocketMode= decides it (docs/operations.md)",
        path, has, *mode);
  if (group && st.st_gid != *group)
    spdlog::warn(
        "the socket {} systemd passed has group {}, not [ipc] socket_group's {}: the socket unit's "
        "SocketGroup= decides it (docs/operations.md)",
        path, st.st_gid, *group);
}

void Server::serve() {
  if (impl_->serving || !impl_->acceptor || impl_->core.stopping) return;
  impl_->serving = true;
  impl_->accept();
}

void Server::stop(std::chrono::milliseconds grace, std::function<void()> done, std::function<bool()> others_busy) {
  auto impl = impl_;
  impl->core.stopping = true;
  if (impl->acceptor) {
    boost::system::error_code ignored;
    impl->acceptor->close(ignored);
  }
  if (!impl->owned_path.empty()) {
    ::unlink(impl->owned_path.c_str());
    impl->owned_path.clear();
  }
  for (auto& [id, c] : impl->core.connections) c->stop_reading();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  auto poll = std::make_shared<std::function<void()>>();
  *poll = [impl, deadline, done = std::move(done), others_busy = std::move(others_busy), poll]() mutable {
    const bool idle = impl->inflight() == 0 && !(others_busy && others_busy());
    if (!idle && std::chrono::steady_clock::now() < deadline) {
      impl->drain_timer.emplace(impl->core.io, std::chrono::milliseconds(50));
      impl->drain_timer->async_wait([poll](const boost::system::error_code&) { (*poll)(); });
      return;
    }
    for (auto& [id, c] : std::map(impl->core.connections))
      c->fail_inflight(Error(Errc::service_unavailable, "korttid is stopping"));
    // Give the last answers a moment to reach the clients, then hang up.
    impl->drain_timer.emplace(impl->core.io, std::chrono::milliseconds(100));
    impl->drain_timer->async_wait([impl, done = std::move(done), poll](const boost::system::error_code&) {
      impl->close_all();
      *poll = nullptr;  // break the self-reference
      if (done) done();
    });
  };
  (*poll)();
}

void Server::set_access(AccessPolicy access) { impl_->core.options.access = std::move(access); }

void Server::set_request_timeout(std::chrono::milliseconds timeout) { impl_->core.options.request_timeout = timeout; }

void Server::publish(std::string_view topic, Json params) { impl_->core.publish(topic, std::move(params)); }

std::size_t Server::connections() const { return impl_->core.connections.size(); }

}  // namespace kortti::ipc
