// The scripted korttid double (support.hpp): a thread that accepts one
// connection at a time on a Unix socket and answers its requests' lines.

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "common/json.hpp"
#include "tests/support/support.hpp"

namespace kortti::test {

int listen_unix(const fs::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.string().copy(addr.sun_path, sizeof addr.sun_path - 1);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 4) != 0)
    throw std::runtime_error("cannot listen on " + path.string());
  return fd;
}

struct ScriptedKorttid::Impl {
  Impl(const fs::path& socket, std::map<std::string, std::string> scripted)
      : listener(listen_unix(socket)), answers(std::move(scripted)), thread([this] { serve(); }) {}
  ~Impl() {
    stop = true;
    thread.join();
    ::close(listener);
  }

  void serve() {
    while (!stop) {
      pollfd p{listener, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn >= 0) converse(conn);
    }
  }

  void converse(int conn) {
    std::string buffer;
    char chunk[4096];
    while (!stop) {
      pollfd p{conn, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::read(conn, chunk, sizeof chunk);
      if (n <= 0) break;
      buffer.append(chunk, static_cast<std::size_t>(n));
      for (auto nl = buffer.find('\n'); nl != std::string::npos; nl = buffer.find('\n')) {
        const Json request = Json::parse(buffer.substr(0, nl), nullptr, false);
        buffer.erase(0, nl + 1);
        if (!request.is_object()) continue;
        const std::string method = str(request.value("method", Json("")));
        {
          std::lock_guard lock(mutex);
          methods.push_back(method);
        }
        auto scripted = answers.find(method);
        if (scripted != answers.end() && scripted->second == kStall) {
          while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(20));
          break;
        }
        std::string answer = scripted != answers.end() ? scripted->second : R"({"jsonrpc":"2.0","id":ID,"result":{}})";
        if (const auto at = answer.find("ID"); at != std::string::npos)
          answer.replace(at, 2, std::to_string(request.value("id", 0)));
        answer += '\n';
        // The client may hang up part way through a long answer.
        (void)!::send(conn, answer.data(), answer.size(), MSG_NOSIGNAL);
      }
    }
    ::close(conn);
  }

  int listener;
  std::map<std::string, std::string> answers;
  std::atomic<bool> stop{false};
  mutable std::mutex mutex;
  std::vector<std::string> methods;
  std::thread thread;
};

ScriptedKorttid::ScriptedKorttid(const fs::path& socket, std::map<std::string, std::string> answers)
    : impl_(std::make_unique<Impl>(socket, std::move(answers))) {}

ScriptedKorttid::~ScriptedKorttid() = default;

std::vector<std::string> ScriptedKorttid::methods() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->methods;
}

}  // namespace kortti::test
