#include <signal.h>

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "tests/support/process.hpp"
#include "tests/support/support.hpp"

namespace kortti::test {

Desktop::Desktop() {
  bus_ = spawn_logged({"dbus-daemon", "--session", "--nofork", "--address=unix:path=" + (dir_ / "bus").string()}, {},
                      dir_ / "dbus.log");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!fs::exists(dir_ / "bus") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  server_ = spawn_logged(
      {(programs_dir() / "tests/notify_double/kortti-notify-double").string(), (dir_ / "notices").string()}, env(),
      dir_ / "notify.log");
  while (!fs::exists(dir_ / "notices.ready") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (!fs::exists(dir_ / "notices.ready"))
    throw std::runtime_error("the notification server double never owned its name: " + read_file(dir_ / "dbus.log") +
                             read_file(dir_ / "notify.log"));
}

Desktop::~Desktop() {
  reap(watch_, SIGTERM);
  reap(server_, SIGTERM);
  reap(bus_, SIGTERM);
}

std::map<std::string, std::string> Desktop::env() const {
  return {{"DBUS_SESSION_BUS_ADDRESS", "unix:path=" + (dir_ / "bus").string()}};
}

std::vector<std::string> Desktop::notices() const {
  std::vector<std::string> out;
  std::ifstream in(dir_ / "notices");
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool Desktop::wait_for_notice(const std::string& text, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (const auto& n : notices())
      if (n.find(text) != std::string::npos) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void Desktop::start_watch(const std::string& socket, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kortti_binary().string(), "--socket", socket, "watch"};
  argv.insert(argv.end(), args.begin(), args.end());
  watch_ = spawn_logged(argv, env(), dir_ / "watch.log");
}

void Desktop::stop_watch() { reap(watch_, SIGTERM); }

std::string Desktop::watch_log() const { return read_file(dir_ / "watch.log"); }

}  // namespace kortti::test
