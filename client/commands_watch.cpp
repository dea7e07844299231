// `kortti watch`: the card's state on the user's desktop. A small
// long-running program (systemd/kortti-watch.service) that shows a
// notification through the freedesktop Notifications D-Bus interface when a
// card comes or goes, a PIN has one try left or is locked, a card
// certificate expires within --expiry-days, or the registry extract is
// stale. Optional: korttid works the same without it.

#include <systemd/sd-bus.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <set>
#include <stdexcept>

#include "client/commands.hpp"
#include "common/encoding.hpp"

namespace kortti::cli {

namespace {

using client::Client;
using namespace std::chrono_literals;

class Notifier {
 public:
  virtual ~Notifier() = default;
  virtual void show(const Condition& notice) = 0;
};

// A body for the notification server, which may read markup in it (the
// Desktop Notifications Specification's body-markup: links, images): a
// card's label or a reader's name is shown as the text it is.
std::string notification_body(const std::string& text) {
  std::string out;
  for (const char c : displayable(text)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// The desktop's notification server on the user's session bus.
class DesktopNotifier : public Notifier {
 public:
  DesktopNotifier() {
    if (sd_bus_open_user(&bus_) < 0)
      throw std::runtime_error(
          "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS): run kortti watch in a desktop session, or use --print");
  }
  ~DesktopNotifier() override { sd_bus_flush_close_unref(bus_); }
  DesktopNotifier(const DesktopNotifier&) = delete;
  DesktopNotifier& operator=(const DesktopNotifier&) = delete;

  void show(const Condition& n) override {
    sd_bus_error error{};  // SD_BUS_ERROR_NULL, without its C99 compound literal
    sd_bus_message* reply = nullptr;
    const std::string summary = displayable(n.summary);
    const std::string body = notification_body(n.body);
    // Notify(app_name, replaces_id, app_icon, summary, body, actions, hints, expire_timeout)
    const int r = sd_bus_call_method(bus_, "org.freedesktop.Notifications", "/org/freedesktop/Notifications",
                                     "org.freedesktop.Notifications", "Notify", &error, &reply, "susssasa{sv}i",
                                     "kortti", 0U, "security-high", summary.c_str(), body.c_str(), 0, 1, "urgency", "y",
                                     static_cast<unsigned char>(n.urgent ? 2 : 1), -1);
    if (r < 0)
      std::cerr << "kortti watch: the notification could not be shown (" << (error.message ? error.message : "D-Bus")
                << "): " << n.summary << "\n";
    sd_bus_error_free(&error);
    sd_bus_message_unref(reply);
  }

 private:
  sd_bus* bus_ = nullptr;
};

// One line per notice on stdout: for a terminal, a log, or a test.
class PrintNotifier : public Notifier {
 public:
  void show(const Condition& n) override { std::cout << n.summary << ": " << n.body << std::endl; }
};

struct WatchOptions {
  int expiry_days = 30;
  int interval_s = 60;
  bool print = false;
  bool once = false;
};

class Watch {
 public:
  Watch(Client& c, Notifier& notifier, const WatchOptions& options) : c_(c), notifier_(notifier), options_(options) {}

  // Everything that is a condition rather than an event: PINs, certificates,
  // the registry. A condition is shown once while it lasts.
  void check() {
    std::set<std::string> now;
    for (const Condition& condition : card_conditions(c_, options_.expiry_days)) {
      now.insert(condition.key);
      if (shown_.count(condition.key) == 0) notifier_.show(condition);
    }
    shown_ = std::move(now);
  }

  // Events are news: each is shown as it comes.
  void event(const Json& p) {
    const std::string topic = text(p, "topic");
    const std::string type = text(p, "type");
    const std::string reader = p.contains("reader") && p["reader"].is_string() ? text(p, "reader") : "";
    if (topic == "card" && type == "inserted") notifier_.show({"", "Card inserted", "A card is in " + reader + "."});
    if (topic == "card" && type == "removed") notifier_.show({"", "Card removed", "The card left " + reader + "."});
    if (topic == "pin" && type == "changed")
      notifier_.show({"", "PIN changed", "The PIN of " + text(p, "token_id") + " is changed."});
    if (topic == "pin" && type == "unblocked")
      notifier_.show({"", "PIN unblocked", "The PIN of " + text(p, "token_id") + " is unblocked and set anew."});
  }

  int run() {
    check();
    if (options_.once) return 0;
    c_.call("events.subscribe", {{"topics", Json::array({"card", "token", "session", "pin"})}});
    auto next_check = std::chrono::steady_clock::now() + std::chrono::seconds(options_.interval_s);
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(next_check - std::chrono::steady_clock::now());
      auto e = c_.next_event(std::max(left, std::chrono::milliseconds(0)));
      if (e) {
        event((*e)["params"]);
        // A card that came, a login or a PIN change can change the conditions.
        next_check = std::min(next_check, std::chrono::steady_clock::now() + 1s);
        continue;
      }
      check();
      next_check = std::chrono::steady_clock::now() + std::chrono::seconds(options_.interval_s);
    }
  }

 private:
  Client& c_;
  Notifier& notifier_;
  WatchOptions options_;
  std::set<std::string> shown_;
};

}  // namespace

Runner define_watch(CLI::App& cmd) {
  auto o = std::make_shared<WatchOptions>();
  cmd.add_option("--expiry-days", o->expiry_days, "warn this many days before a card certificate expires")
      ->check(CLI::Range(1, 3650))
      ->capture_default_str();
  cmd.add_option("--interval", o->interval_s, "seconds between checks of PINs, certificates and the registry")
      ->check(CLI::Range(5, 86400))
      ->capture_default_str();
  cmd.add_flag("--print", o->print, "print notifications on stdout instead of the desktop's (D-Bus)");
  cmd.add_flag("--once", o->once, "show what is wrong now, then exit (no events)");
  cmd.footer(
      "\nNotifications go to the freedesktop Notifications service on the session bus. Run it with the\n"
      "systemd user unit: systemctl --user enable --now kortti-watch.service");
  return {[o](Client& c, const Globals&) {
            std::unique_ptr<Notifier> notifier;
            if (o->print)
              notifier = std::make_unique<PrintNotifier>();
            else
              notifier = std::make_unique<DesktopNotifier>();
            Watch watch(c, *notifier, *o);
            return watch.run();
          },
          {}};
}

}  // namespace kortti::cli
