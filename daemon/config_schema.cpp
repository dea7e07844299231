#include "daemon/config_schema.hpp"

#include <grp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <stdexcept>

#include "common/digest.hpp"
#include "common/error.hpp"
#include "common/loopback_peer.hpp"
#include "common/origin.hpp"
#include "common/peer.hpp"
#include "common/user_dirs.hpp"
#include "pcsc/pcsc.hpp"
#include "pkcs11/pkcs11.hpp"
#include "policy/policy.hpp"

namespace kortti::daemon {

namespace {

using Why = std::optional<std::string>;
// A key's own rule beyond its type, range and choices.
using Check = std::function<Why(const ConfigValue&)>;

ConfigValue value_of(bool v) { return v; }
ConfigValue value_of(const std::string& v) { return v; }
template <std::integral Int>
ConfigValue value_of(Int v) {
  return static_cast<std::int64_t>(v);
}
template <class Rep, class Period>
ConfigValue value_of(std::chrono::duration<Rep, Period> v) {
  return static_cast<std::int64_t>(v.count());
}
ConfigValue value_of(const StringList& v) { return v; }
ConfigValue value_of(const std::set<std::string>& v) { return StringList(v.begin(), v.end()); }
ConfigValue value_of(const StringMap& v) { return v; }
ConfigValue value_of(const std::optional<bool>& v) { return v ? ConfigValue(*v) : ConfigValue(); }

void store(bool& out, const ConfigValue& v) { out = std::get<bool>(v); }
void store(std::string& out, const ConfigValue& v) { out = std::get<std::string>(v); }
template <std::integral Int>
void store(Int& out, const ConfigValue& v) {
  out = static_cast<Int>(std::get<std::int64_t>(v));
}
template <class Rep, class Period>
void store(std::chrono::duration<Rep, Period>& out, const ConfigValue& v) {
  out = std::chrono::duration<Rep, Period>(static_cast<Rep>(std::get<std::int64_t>(v)));
}
void store(StringList& out, const ConfigValue& v) { out = std::get<StringList>(v); }
void store(std::set<std::string>& out, const ConfigValue& v) {
  const auto& list = std::get<StringList>(v);
  out = std::set<std::string>(list.begin(), list.end());
}
void store(StringMap& out, const ConfigValue& v) { out = std::get<StringMap>(v); }
void store(std::optional<bool>& out, const ConfigValue& v) { out = std::get<bool>(v); }

ConfigValue num(std::int64_t v) { return v; }
ConfigValue str(const char* v) { return std::string(v); }
ConfigValue list(std::initializer_list<const char*> v) { return StringList(v.begin(), v.end()); }

// Builds one KeySpec in one expression, so the table below stays a row per key.
class Row {
 public:
  Row(std::string table, std::string key, KeyType type, ConfigValue default_value, Reload reload, std::string doc) {
    spec_.table = std::move(table);
    spec_.key = std::move(key);
    spec_.type = type;
    spec_.default_value = std::move(default_value);
    spec_.reload = reload;
    spec_.doc = std::move(doc);
  }

  Row& range(std::int64_t min, std::int64_t max) {
    spec_.min = min;
    spec_.max = max;
    return *this;
  }

  Row& one_of(std::vector<std::string> choices) {
    spec_.choices = std::move(choices);
    return *this;
  }

  Row& required() {
    spec_.required = true;
    return *this;
  }

  // `ref` reaches the field for Config and const Config alike:
  // [](auto& c) -> auto& { return c.ipc.socket; }.
  template <class Ref>
  Row& bind(Ref ref, Check check = {}) {
    spec_.set = [ref, check](Config& c, const ConfigValue& v) -> Why {
      if (check)
        if (auto why = check(v)) return why;
      store(ref(c), v);
      return std::nullopt;
    };
    spec_.get = [ref](const Config& c) { return value_of(ref(c)); };
    return *this;
  }

  // A choice stored as an enum (or a bool): the words are the key's choices.
  template <class Ref, class Value>
  Row& words(Ref ref, std::vector<std::pair<std::string, Value>> table) {
    for (const auto& w : table) spec_.choices.push_back(w.first);
    spec_.set = [ref, table](Config& c, const ConfigValue& v) -> Why {
      for (const auto& w : table)
        if (w.first == std::get<std::string>(v)) ref(c) = w.second;
      return std::nullopt;
    };
    spec_.get = [ref, table](const Config& c) -> ConfigValue {
      for (const auto& w : table)
        if (w.second == ref(c)) return w.first;
      return {};
    };
    return *this;
  }

  Row& bool_words(std::string when_false, std::string when_true) {
    spec_.bool_words = {std::move(when_false), std::move(when_true)};
    return *this;
  }

  Row& custom(decltype(KeySpec::set) set, decltype(KeySpec::get) get) {
    spec_.set = std::move(set);
    spec_.get = std::move(get);
    return *this;
  }

  // An array of tables: `ref` reaches its vector. Each [[table.key]] adds
  // an entry, whose fields are the rows of table "table.key".
  template <class Ref>
  Row& entries(Ref ref) {
    spec_.set = [ref](Config& c, const ConfigValue&) -> Why {
      ref(c).emplace_back();
      return std::nullopt;
    };
    spec_.get = [ref](const Config& c) { return value_of(ref(c).size()); };
    spec_.keep_first = [ref](Config& c, std::size_t n) { ref(c).resize(std::min(n, ref(c).size())); };
    return *this;
  }

  Row& entry_check(decltype(KeySpec::check_entry) check) {
    spec_.check_entry = std::move(check);
    return *this;
  }

  operator KeySpec() const { return spec_; }

 private:
  KeySpec spec_;
};

constexpr KeyType Bool = KeyType::boolean;
constexpr KeyType Int = KeyType::integer;
constexpr KeyType Seconds = KeyType::seconds;
constexpr KeyType Hours = KeyType::hours;
constexpr KeyType String = KeyType::string;
constexpr KeyType Path = KeyType::path;
constexpr KeyType Strings = KeyType::strings;
constexpr KeyType Choice = KeyType::choice;
constexpr Reload Hup = Reload::sighup;
constexpr Reload Restart = Reload::restart;

// The access groups are resolved (user and group names) when read, so an
// unknown name stops the start, not the first request.
Why access_entries(const ConfigValue& v) {
  try {
    (void)Principals::parse(std::get<StringList>(v));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return std::nullopt;
}

Why mapping_source(const ConfigValue& v) {
  try {
    policy::check_mapping_source(std::get<std::string>(v));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return std::nullopt;
}

Why existing_group(const ConfigValue& v) {
  const auto& group = std::get<std::string>(v);
  if (!group.empty() && getgrnam(group.c_str()) == nullptr) return "no such group \"" + group + "\"";
  return std::nullopt;
}

std::string expand_runtime_dir(std::string value) {
  const std::string var = "${XDG_RUNTIME_DIR}";
  if (auto pos = value.find(var); pos != std::string::npos) {
    value.replace(pos, var.size(), user_runtime_dir());
  }
  return value;
}

// A page's origin exactly: never "*" or "null", which would let any page
// (or a sandboxed one) sign.
Why web_origins(const ConfigValue& v) {
  for (const auto& origin : std::get<StringList>(v)) {
    if (origin == "*" || origin == "null") return "\"" + origin + "\" would let any page sign; list each origin";
    try {
      check_web_origin(origin);
    } catch (const Error& e) {
      return std::string(e.what()) + " (allowed_origins)";
    }
    // Compared as the browser sends Origin: lower case, no default port.
    if (std::any_of(origin.begin(), origin.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
      return "\"" + origin + "\" must be in lower case, as a browser sends it";
    if (origin.size() > 4 && origin.compare(origin.size() - 4, 4, ":443") == 0)
      return "\"" + origin + "\" must leave out :443, as a browser does";
  }
  return std::nullopt;
}

Why set_socket(Config& c, const ConfigValue& v) {
  c.ipc.socket = expand_runtime_dir(std::get<std::string>(v));
  return std::nullopt;
}

Why set_socket_mode(Config& c, const ConfigValue& v) {
  const auto& mode = std::get<std::string>(v);
  char* end = nullptr;
  const long parsed = std::strtol(mode.c_str(), &end, 8);
  if (mode.empty() || *end != '\0' || parsed < 0 || parsed > 0777)
    return "must be an octal mode string such as \"0660\"";
  c.ipc.socket_mode = static_cast<mode_t>(parsed);
  return std::nullopt;
}

ConfigValue get_socket_mode(const Config& c) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(c.ipc.socket_mode));
  return std::string(text);
}

std::vector<std::pair<std::string, std::string>> check_card_type(const Config& c) {
  std::vector<std::pair<std::string, std::string>> problems;
  const auto& entry = c.pcsc.card_types.back();
  const auto atr = pcsc::parse_hex(entry.atr);
  if (!entry.atr.empty() && (!atr || atr->empty())) problems.emplace_back("atr", "must be the ATR in hex");
  if (!entry.mask.empty()) {
    const auto mask = pcsc::parse_hex(entry.mask);
    if (!mask || !atr || mask->size() != atr->size())
      problems.emplace_back("mask", "must be hex of the same length as the ATR");
  }
  return problems;
}

std::vector<std::pair<std::string, std::string>> check_upstream(const Config& c) {
  std::vector<std::pair<std::string, std::string>> problems;
  const auto& u = c.tls.upstreams.back();
  if (u.name.empty() || u.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_") != std::string::npos)
    problems.emplace_back("name", "must be lower-case letters, digits, - and _");
  const auto port = loopback_endpoint(u.listen);
  for (std::size_t i = 0; i + 1 < c.tls.upstreams.size(); ++i) {
    if (c.tls.upstreams[i].name == u.name) problems.emplace_back("name", "is already another upstream's");
    const auto& other = c.tls.upstreams[i].listen;
    if (other == u.listen || (port && port == loopback_endpoint(other)))
      problems.emplace_back("listen", "is already another upstream's");
  }
  if (!split_host_port(u.connect)) problems.emplace_back("connect", "must be host:port (an IPv6 address in [])");
  if (!u.listen.empty() && u.listen.front() != '/' && !port)
    problems.emplace_back("listen",
                          "must be a Unix socket's absolute path, or a loopback address and port: "
                          "127.0.0.1:18443 or [::1]:18443 (no name, no other address)");
  if (!u.ca_file.empty() && ::access(u.ca_file.c_str(), R_OK) != 0)
    problems.emplace_back("ca_file", "cannot be read: " + u.ca_file);
  // The system's roots are many CAs an admin did not choose: only if asked.
  if (u.ca_file.empty() && !u.system_roots)
    problems.emplace_back("ca_file", "is required (or system_roots = true to trust the system's roots)");
  for (const auto& p : u.alpn)
    if (p.empty() || p.size() > 255) problems.emplace_back("alpn", "entries must be 1 to 255 bytes");
  return problems;
}

const std::vector<std::string> kLogLevels = {"trace", "debug", "info", "warn", "error", "critical", "off"};
const std::vector<std::pair<std::string, policy::FailMode>> kFailModes = {{"hard-fail", policy::FailMode::hard},
                                                                          {"soft-fail", policy::FailMode::soft}};
const std::vector<std::pair<std::string, pkcs11::UnblockStyle>> kUnblockStyles = {
    {"set_pin_unlogged", pkcs11::UnblockStyle::set_pin_unlogged}, {"so_login", pkcs11::UnblockStyle::so_login}};
const std::vector<std::pair<std::string, service::PinpadFor>> kPinpadFor = {{"seat", service::PinpadFor::seat},
                                                                            {"anyone", service::PinpadFor::anyone}};
const std::vector<std::pair<std::string, DigestAlgorithm>> kDigests = {
    {"sha256", DigestAlgorithm::sha256}, {"sha384", DigestAlgorithm::sha384}, {"sha512", DigestAlgorithm::sha512}};

// The schema itself, one row per key. Long because it is the table, not
// logic: a key is added or changed here and nowhere else.
std::vector<KeySpec> rows() {
  using policy::Action;
  return {
      // [ipc]
      Row("ipc", "socket", Path, str("/run/korttid/korttid.sock"), Restart,
          "the Unix socket clients connect to; ${XDG_RUNTIME_DIR} is expanded; unused when systemd passes it")
          .custom(set_socket, [](const Config& c) { return value_of(c.ipc.socket); }),
      Row("ipc", "socket_mode", String, str("0660"), Restart, "octal mode of the socket file")
          .custom(set_socket_mode, get_socket_mode),
      Row("ipc", "socket_group", String, str(""), Restart, "group of the socket file (must exist); empty: as created")
          .bind(
              [](auto& c) -> auto& { return c.ipc.socket_group; }, existing_group),
      Row("ipc", "max_message_bytes", Int, num(16 * 1024 * 1024), Restart,
          "longest message (one JSON line) or attachment")
          .range(1024, 256LL * 1024 * 1024)
          .bind([](auto& c) -> auto& { return c.ipc.max_message_bytes; }),
      Row("ipc", "max_connections", Int, num(64), Restart, "clients connected at once; more get 1060")
          .range(1, 4096)
          .bind([](auto& c) -> auto& { return c.ipc.max_connections; }),
      Row("ipc", "max_connections_per_uid", Int, num(16), Restart, "connections one uid may hold at once")
          .range(1, 4096)
          .bind([](auto& c) -> auto& { return c.ipc.max_connections_per_uid; }),
      Row("ipc", "idle_timeout_s", Seconds, num(300), Restart,
          "an idle connection (nothing in flight, no subscription) is closed after this long; 0: never")
          .range(0, 86400)
          .bind([](auto& c) -> auto& { return c.ipc.idle_timeout; }),
      Row("ipc", "max_inflight_per_connection", Int, num(32), Restart, "requests in flight per connection")
          .range(1, 1024)
          .bind([](auto& c) -> auto& { return c.ipc.max_inflight_per_connection; }),
      Row("ipc", "max_pin_requests_per_uid", Int, num(4), Restart, "requests carrying a PIN one uid may have running")
          .range(1, 256)
          .bind([](auto& c) -> auto& { return c.ipc.max_pin_requests_per_uid; }),
      Row("ipc", "log_lines_per_second_per_uid", Int, num(20), Restart,
          "request and connection log lines one uid may cause a second, over 10 s (the TLS listeners and the SCS "
          "port: a budget each of their own); more are counted; 0: no limit")
          .range(0, 100000)
          .bind([](auto& c) -> auto& { return c.ipc.log_lines_per_second_per_uid; }),
      Row("ipc", "request_timeout_s", Seconds, num(120), Hup, "deadline of every request, PIN-pad entry included")
          .range(1, 3600)
          .bind([](auto& c) -> auto& { return c.ipc.request_timeout; }),
      // The stop handler reads the running config, which SIGHUP replaces.
      Row("ipc", "shutdown_grace_s", Seconds, num(10), Hup,
          "how long SIGTERM waits for requests in flight (the socket's and SCS signatures)")
          .range(0, 300)
          .bind([](auto& c) -> auto& { return c.ipc.shutdown_grace; }),

      // [access]
      Row("access", "read", Strings, list({"*"}), Hup, "who may call the read methods")
          .bind(
              [](auto& c) -> auto& { return c.access.read; }, access_entries),
      Row("access", "session", Strings, list({"*"}), Hup, "who may call session.login and session.logout")
          .bind(
              [](auto& c) -> auto& { return c.access.session; }, access_entries),
      Row("access", "sign", Strings, list({"*"}), Hup, "who may call sign.*")
          .bind(
              [](auto& c) -> auto& { return c.access.sign; }, access_entries),
      Row("access", "admin", Strings, list({"uid:0"}), Hup, "who may call the administrative methods")
          .bind(
              [](auto& c) -> auto& { return c.access.admin; }, access_entries),

      // [pkcs11]
      Row("pkcs11", "modules", Strings, list({"/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"}), Restart,
          "PKCS#11 modules to load, in order")
          .bind([](auto& c) -> auto& { return c.pkcs11.modules; }),
      Row("pkcs11", "unblock_style", Choice, str("set_pin_unlogged"), Restart,
          "how pin.unblock reaches the module: C_SetPIN(PUK, new) not logged in (OpenSC), or "
          "C_Login(CKU_SO, PUK) and C_InitPIN")
          .words(
              [](auto& c) -> auto& { return c.pkcs11.unblock_style; }, kUnblockStyles),

      // [session]
      Row("session", "lifetime_s", Seconds, num(8 * 3600), Restart,
          "an authentication session ends this long after login")
          .range(1, 7 * 24 * 3600)
          .bind([](auto& c) -> auto& { return c.session.lifetime; }),
      Row("session", "idle_timeout_s", Seconds, num(30 * 60), Restart, "... or this long after its last use")
          .range(1, 7 * 24 * 3600)
          .bind([](auto& c) -> auto& { return c.session.idle_timeout; }),

      // [pin]
      Row("pin", "pinentry", String, str("pinentry"), Restart,
          "the PIN dialog program (GnuPG pinentry) for pin_prompt; a name is looked up in PATH")
          .bind([](auto& c) -> auto& { return c.pin.pinentry; }),
      Row("pin", "tty", String, str(""), Restart,
          "a terminal for pinentry-tty or -curses; empty: the program's own (DISPLAY, WAYLAND_DISPLAY)")
          .bind([](auto& c) -> auto& { return c.pin.tty; }),
      Row("pin", "timeout_s", Seconds, num(60), Restart, "the user's time to answer one PIN dialog")
          .range(5, 600)
          .bind([](auto& c) -> auto& { return c.pin.timeout; }),
      Row("pin", "prompt_attempts", Int, num(3), Restart, "PIN dialogs for one request, the first included")
          .range(1, 10)
          .bind([](auto& c) -> auto& { return c.pin.prompt_attempts; }),
      Row("pin", "client_may_send", Bool, true, Restart, "take a signature PIN (PIN2) sent in a request").bind([
      ](auto& c) -> auto& { return c.pin.client_may_send; }),
      Row("pin", "client_may_send_authentication", Bool, true, Restart,
          "take an authentication PIN (PIN1) sent in a request")
          .bind([](auto& c) -> auto& { return c.pin.client_may_send_authentication; }),
      Row("pin", "pinpad_for", Choice, str("seat"), Restart,
          "whose requests may make a reader's PIN pad ask: seat (a uid with an active session at this machine's "
          "seat, or root) or anyone")
          .words(
              [](auto& c) -> auto& { return c.pin.pinpad_for; }, kPinpadFor),

      // [pcsc]
      Row("pcsc", "enabled", Bool, true, Restart, "watch readers and cards through pcscd").bind([](auto& c) -> auto& {
        return c.pcsc.enabled;
      }),
      Row("pcsc", "reader", KeyType::table_array, num(0), Restart, "a reader whose PIN-pad report is wrong").entries([
      ](auto& c) -> auto& { return c.pcsc.readers; }),
      Row("pcsc.reader", "name", String, str(""), Restart, "a prefix of the PC/SC reader name").required().bind([
      ](auto& c) -> auto& { return c.pcsc.readers.back().name; }),
      Row("pcsc.reader", "pinpad", Bool, {}, Restart, "whether it has a PIN pad; unset: what the reader reports").bind([
      ](auto& c) -> auto& { return c.pcsc.readers.back().pinpad; }),
      Row("pcsc", "card_type", KeyType::table_array, num(0), Restart, "a card to know by ATR, before the built-in ones")
          .entries([](auto& c) -> auto& { return c.pcsc.card_types; })
          .entry_check(check_card_type),
      Row("pcsc.card_type", "atr", String, str(""), Restart, "the ATR in hex").required().bind([](auto& c) -> auto& {
        return c.pcsc.card_types.back().atr;
      }),
      Row("pcsc.card_type", "mask", String, str(""), Restart,
          "hex, the ATR's length: the bits that must match; empty: all")
          .bind([](auto& c) -> auto& { return c.pcsc.card_types.back().mask; }),
      Row("pcsc.card_type", "name", String, str(""), Restart, "the card_type clients see").required().bind([
      ](auto& c) -> auto& { return c.pcsc.card_types.back().name; }),
      Row("pcsc.card_type", "description", String, str(""), Restart, "free text").bind([](auto& c) -> auto& {
        return c.pcsc.card_types.back().description;
      }),

      // [log]
      Row("log", "level", Choice, str("info"), Hup, "least severe level logged").one_of(kLogLevels).bind([
      ](auto& c) -> auto& { return c.log.level; }),
      Row("log", "target", Choice, str("stderr"), Restart, "stderr, or journal (native fields)")
          .one_of({"stderr", "journal"})
          .bind([](auto& c) -> auto& { return c.log.target; }),

      // [tls]
      Row("tls", "enabled", Bool, false, Restart, "TLS client authentication with the card through forward tunnels")
          .bind([](auto& c) -> auto& { return c.tls.enabled; }),
      Row("tls", "handshake_timeout_s", Seconds, num(30), Restart,
          "the whole of one tunnel's connection and handshake, the card's signature included")
          .range(1, 600)
          .bind([](auto& c) -> auto& { return c.tls.handshake_timeout; }),
      Row("tls", "max_tunnels", Int, num(16), Restart, "tunnels open at once, all upstreams together")
          .range(1, 1024)
          .bind([](auto& c) -> auto& { return c.tls.max_tunnels; }),
      Row("tls", "max_tunnels_per_uid", Int, num(8), Restart,
          "tunnels one uid may have open at once, all upstreams together")
          .range(1, 1024)
          .bind([](auto& c) -> auto& { return c.tls.max_tunnels_per_uid; }),
      Row("tls", "upstream", KeyType::table_array, num(0), Hup, "a server the card may log in to")
          .entries([](auto& c) -> auto& { return c.tls.upstreams; })
          .entry_check(check_upstream),
      Row("tls.upstream", "name", String, str(""), Hup, "how logs, audit lines and clients name it").required().bind([
      ](auto& c) -> auto& { return c.tls.upstreams.back().name; }),
      Row("tls.upstream", "connect", String, str(""), Hup, "host:port of the server").required().bind([
      ](auto& c) -> auto& { return c.tls.upstreams.back().connect; }),
      Row("tls.upstream", "server_name", String, str(""), Hup,
          "SNI and the name its certificate must carry; empty: the host of connect")
          .bind([](auto& c) -> auto& { return c.tls.upstreams.back().server_name; }),
      Row("tls.upstream", "ca_file", Path, str(""), Hup,
          "PEM roots the server's certificate is checked against; required unless system_roots")
          .bind([](auto& c) -> auto& { return c.tls.upstreams.back().ca_file; }),
      Row("tls.upstream", "system_roots", Bool, false, Hup,
          "trust the system's roots too (OpenSSL's default paths), as well as ca_file")
          .bind([](auto& c) -> auto& { return c.tls.upstreams.back().system_roots; }),
      Row("tls.upstream", "listen", String, str(""), Hup,
          "where clients connect: a Unix socket's path, or a loopback address and port (127.0.0.1:18443)")
          .required()
          .bind([](auto& c) -> auto& { return c.tls.upstreams.back().listen; }),
      Row("tls.upstream", "min_version", Choice, str("1.2"), Hup, "the lowest TLS version accepted")
          .one_of({"1.2", "1.3"})
          .bind([](auto& c) -> auto& { return c.tls.upstreams.back().min_version; }),
      Row("tls.upstream", "alpn", Strings, list({}), Hup, "ALPN protocols offered, e.g. [\"http/1.1\"]").bind([
      ](auto& c) -> auto& { return c.tls.upstreams.back().alpn; }),
      Row("tls.upstream", "access", Strings, list({"*"}), Hup, "who may open its tunnels, as [access] entries")
          .bind(
              [](auto& c) -> auto& { return c.tls.upstreams.back().access; }, access_entries),

      // [scs]
      Row("scs", "enabled", Bool, false, Restart,
          "the SCS interface for browser EHRs on https://localhost (served by per-user instances: korttid "
          "--user-instance)")
          .bind([](auto& c) -> auto& { return c.scs.enabled; }),
      Row("scs", "port", Int, num(53952), Restart, "its TCP port on 127.0.0.1 and ::1").range(1024, 65535).bind([
      ](auto& c) -> auto& { return c.scs.port; }),
      Row("scs", "allowed_origins", Strings, list({}), Restart,
          "the pages that may use it, each exactly https://host[:port]; empty: none")
          .bind(
              [](auto& c) -> auto& { return c.scs.allowed_origins; }, web_origins),
      Row("scs", "certificate", Path, str("${XDG_DATA_HOME}/kortti/scs/localhost.pem"), Restart,
          "the listener's certificate (PEM, with its issuer), made by kortti scs setup")
          .bind([](auto& c) -> auto& { return c.scs.certificate; }),
      Row("scs", "key", Path, str("${XDG_DATA_HOME}/kortti/scs/localhost.key"), Restart,
          "the listener's private key (PEM), made by kortti scs setup")
          .bind([](auto& c) -> auto& { return c.scs.key; }),
      Row("scs", "max_body_bytes", Int, num(8 * 1024 * 1024), Restart, "the longest request body; longer gets 413")
          .range(1024, 64LL * 1024 * 1024)
          .bind([](auto& c) -> auto& { return c.scs.max_body_bytes; }),
      Row("scs", "max_connections", Int, num(16), Restart, "connections open at once").range(1, 256).bind([
      ](auto& c) -> auto& { return c.scs.max_connections; }),
      Row("scs", "signatures_per_minute", Int, num(20), Restart, "signature requests one origin may make a minute")
          .range(1, 600)
          .bind([](auto& c) -> auto& { return c.scs.signatures_per_minute; }),
      Row("scs", "request_timeout_s", Seconds, num(120), Restart,
          "how long one signature may take, the user's PIN dialog included")
          .range(5, 3600)
          .bind([](auto& c) -> auto& { return c.scs.request_timeout; }),

      // [audit]
      Row("audit", "file", Path, str(""), Restart, "the audit trail file; empty: the main log").bind([
      ](auto& c) -> auto& { return c.audit.file; }),
      Row("audit", "denial_lines_per_second_per_uid", Int, num(1), Restart,
          "audit lines of one uid's policy denials a second, over 10 s (and as many of its TLS handshakes "
          "without the card); past it they are counted; 0: no budget")
          .range(0, 1000)
          .bind([](auto& c) -> auto& { return c.audit.denial_lines_per_second_per_uid; }),

      // [identity]
      Row("identity", "given_name", String, str("subject:GN"), Restart, "where the given name sits in the certificate")
          .bind(
              [](auto& c) -> auto& { return c.identity.given_name; }, mapping_source),
      Row("identity", "family_name", String, str("subject:SN"), Restart, "where the family name sits")
          .bind(
              [](auto& c) -> auto& { return c.identity.family_name; }, mapping_source),
      Row("identity", "common_name", String, str("subject:CN"), Restart, "where the common name sits")
          .bind(
              [](auto& c) -> auto& { return c.identity.common_name; }, mapping_source),
      Row("identity", "title", String, str("subject:title"), Restart, "where the title sits (an assumption)")
          .bind(
              [](auto& c) -> auto& { return c.identity.title; }, mapping_source),
      Row("identity", "organisation", String, str("subject:O"), Restart, "where the organisation sits")
          .bind(
              [](auto& c) -> auto& { return c.identity.organisation; }, mapping_source),
      Row("identity", "satu", String, str("subject:serialNumber"), Restart, "where the SATU sits (an assumption)")
          .bind(
              [](auto& c) -> auto& { return c.identity.satu; }, mapping_source),
      Row("identity", "registration_number", String, str("san:otherName:1.2.246.537.26"), Restart,
          "where the registration number sits (an assumption)")
          .bind(
              [](auto& c) -> auto& { return c.identity.registration_number; }, mapping_source),
      Row("identity", "card_types", KeyType::string_map, StringMap{}, Restart,
          "certificatePolicies OID -> card type name")
          .bind([](auto& c) -> auto& { return c.identity.card_types; }),

      // [trust]
      Row("trust", "anchors", Path, str("/etc/korttid/trust"), Restart, "folder of PEM root certificates").bind([
      ](auto& c) -> auto& { return c.trust.anchors; }),
      Row("trust", "intermediates", Path, str("/etc/korttid/intermediates"), Restart,
          "folder of PEM intermediate CAs (missing is fine)")
          .bind([](auto& c) -> auto& { return c.trust.intermediates; }),
      Row("trust", "clock_skew_s", Seconds, num(300), Restart, "tolerance on certificate, OCSP and CRL times")
          .range(0, 86400)
          .bind([](auto& c) -> auto& { return c.trust.clock_skew; }),

      // [revocation]
      Row("revocation", "ocsp", Bool, true, Restart, "ask OCSP first").bind([](auto& c) -> auto& {
        return c.revocation.ocsp;
      }),
      Row("revocation", "crl", Bool, true, Restart, "use CRLs when OCSP gives no answer").bind([](auto& c) -> auto& {
        return c.revocation.crl;
      }),
      Row("revocation", "ocsp_url", String, str(""), Restart, "responder for every certificate; empty: the AIA's")
          .bind([](auto& c) -> auto& { return c.revocation.ocsp_url; }),
      Row("revocation", "ocsp_nonce", Choice, str("required"), Restart,
          "whether the answer must echo the request's nonce; true: required, false: off")
          .words(
              [](auto& c) -> auto& { return c.revocation.ocsp_nonce; },
              std::vector<std::pair<std::string, policy::OcspNonce>>{{"required", policy::OcspNonce::required},
                                                                     {"if_present", policy::OcspNonce::if_present},
                                                                     {"off", policy::OcspNonce::off}})
          .bool_words("off", "required"),
      Row("revocation", "timeout_s", Seconds, num(5), Restart, "the whole of one OCSP request or CRL download")
          .range(1, 120)
          .bind([](auto& c) -> auto& { return c.revocation.timeout; }),
      Row("revocation", "max_cache_s", Seconds, num(3600), Restart,
          "how long an answer without nextUpdate is reused, and how old one without nextUpdate or the echoed nonce "
          "may be")
          .range(0, 7 * 86400)
          .bind([](auto& c) -> auto& { return c.revocation.max_cache; }),
      Row("revocation", "crl_files", Strings, list({}), Restart, "CRL files (DER or PEM) or http:// URLs to consult")
          .bind([](auto& c) -> auto& { return c.revocation.crl_files; }),
      Row("revocation", "crl_fetch", Bool, true, Restart, "download CRLs from the distribution points").bind([
      ](auto& c) -> auto& { return c.revocation.crl_fetch; }),
      Row("revocation", "crl_retry_after_s", Seconds, num(60), Restart,
          "a CRL URL that gave no CRL is not tried again for this long")
          .range(0, 86400)
          .bind([](auto& c) -> auto& { return c.revocation.crl_retry_after; }),
      Row("revocation.fail_mode", "authenticate", Choice, str("soft-fail"), Restart,
          "the authenticate action when no revocation answer can be had")
          .words(
              [](auto& c) -> auto& { return c.revocation.fail_mode.at(Action::authenticate); }, kFailModes),
      Row("revocation.fail_mode", "sign_document", Choice, str("hard-fail"), Restart,
          "the sign.document action when no revocation answer can be had")
          .words(
              [](auto& c) -> auto& { return c.revocation.fail_mode.at(Action::sign_document); }, kFailModes),
      Row("revocation.fail_mode", "sign_prescription", Choice, str("hard-fail"), Restart,
          "the sign.prescription action when no revocation answer can be had")
          .words(
              [](auto& c) -> auto& { return c.revocation.fail_mode.at(Action::sign_prescription); }, kFailModes),

      // [registry]
      Row("registry", "database", Path, str("/var/lib/korttid/registry.sqlite"), Restart,
          "the SQLite file `korttid registry import` writes")
          .bind([](auto& c) -> auto& { return c.registry_database; }),
      Row("registry", "max_age_h", Hours, num(24 * 7), Hup, "an extract older than this is stale")
          .range(1, 24 * 366)
          .bind([](auto& c) -> auto& { return c.rules.registry.max_age; }),
      Row("registry", "when_stale", Choice, str("warn"), Hup, "warn: allow with a warning; deny: refuse prescriptions")
          .words(
              [](auto& c) -> auto& { return c.rules.registry.deny_when_stale; },
              std::vector<std::pair<std::string, bool>>{{"warn", false}, {"deny", true}}),

      // [policy.prescription]
      Row("policy.prescription", "rights", Strings, list({"034"}), Hup, "professional rights that may prescribe").bind([
      ](auto& c) -> auto& { return c.rules.prescription.rights; }),
      Row("policy.prescription", "limited_rights", Strings, list({}), Hup, "rights that may prescribe only limited_atc")
          .bind([](auto& c) -> auto& { return c.rules.prescription.limited_rights; }),
      Row("policy.prescription", "limited_atc", Strings, list({}), Hup, "ATC prefixes the limited rights cover").bind([
      ](auto& c) -> auto& { return c.rules.prescription.limited_atc; }),
      Row("policy.prescription", "self_prescribing", Strings, list({"N02A", "N05B", "N05C", "N06B", "N07BC"}), Hup,
          "ATC prefixes never prescribed for oneself; \"*\": all")
          .bind([](auto& c) -> auto& { return c.rules.prescription.self_prescribing; }),
      Row("policy.prescription", "card_types", Strings, list({}), Hup,
          "card types that may sign prescriptions; empty: any")
          .bind([](auto& c) -> auto& { return c.rules.prescription.card_types; }),

      // [signature]
      Row("signature", "max_document_bytes", Int, num(16 * 1024 * 1024), Restart, "longest document signed or verified")
          .range(1024, 256LL * 1024 * 1024)
          .bind([](auto& c) -> auto& { return c.signature.limits.max_bytes; }),
      Row("signature", "max_queued_bytes", Int, num(64 * 1024 * 1024), Restart,
          "bytes of documents waiting for the documents thread")
          .range(1024, 4096LL * 1024 * 1024)
          .bind([](auto& c) -> auto& { return c.signature.max_queued_bytes; }),
      Row("signature", "max_held_bytes", Int, num(128 * 1024 * 1024), Restart,
          "bytes of documents held from their preparation until their answer (waiting for the card)")
          .range(1024, 4096LL * 1024 * 1024)
          .bind([](auto& c) -> auto& { return c.max_held_bytes; }),
      Row("signature", "kanta_signature_code", String, str("1"), Restart,
          "hl7fi:signatureDescription code of a Kanta CDA signature (an assumption)")
          .bind([](auto& c) -> auto& { return c.signature.signature_code; }),
      Row("signature", "kanta_signature_display", String, str("Sähköinen allekirjoitus"), Restart, "its displayName")
          .bind([](auto& c) -> auto& { return c.signature.signature_display; }),
      Row("signature", "rsa_digest", Choice, str("sha256"), Restart, "digest for RSA keys")
          .words(
              [](auto& c) -> auto& { return c.signature.rsa_digest; }, kDigests),
      Row("signature", "ec_digest", Choice, str("sha384"), Restart, "digest for EC keys")
          .words(
              [](auto& c) -> auto& { return c.signature.ec_digest; }, kDigests),
      Row("signature", "batch_max_items", Int, num(50), Restart, "most items in one sign.batch").range(1, 1000).bind([
      ](auto& c) -> auto& { return c.batch.max_items; }),
      Row("signature", "batch_max_s", Seconds, num(300), Restart, "how long one PIN entry may serve a batch")
          .range(1, 3600)
          .bind([](auto& c) -> auto& { return c.batch.max_time; }),
  };
}

void append_quoted(std::string& out, const std::string& s) {
  out += '"';
  for (const char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  out += '"';
}

}  // namespace

const std::vector<KeySpec>& config_schema() {
  static const std::vector<KeySpec> schema = [] {
    std::vector<KeySpec> all = rows();
    for (auto& field : all)
      for (const auto& array : all)
        if (array.type == KeyType::table_array && field.table == array.name()) field.in_array = true;
    return all;
  }();
  return schema;
}

std::string toml_text(const ConfigValue& value) {
  std::string out;
  if (const auto* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  if (const auto* i = std::get_if<std::int64_t>(&value)) return std::to_string(*i);
  if (const auto* s = std::get_if<std::string>(&value)) {
    append_quoted(out, *s);
  } else if (const auto* l = std::get_if<StringList>(&value)) {
    out = "[";
    for (const auto& item : *l) {
      if (out.size() > 1) out += ", ";
      append_quoted(out, item);
    }
    out += "]";
  } else if (const auto* m = std::get_if<StringMap>(&value)) {
    out = "{";
    for (const auto& [k, v] : *m) {
      out += out.size() > 1 ? ", " : " ";
      append_quoted(out, k);
      out += " = ";
      append_quoted(out, v);
    }
    out += m->empty() ? "}" : " }";
  }
  return out;
}

std::string_view type_name(KeyType type) noexcept {
  switch (type) {
    case KeyType::boolean:
      return "boolean";
    case KeyType::integer:
      return "integer";
    case KeyType::seconds:
      return "seconds";
    case KeyType::hours:
      return "hours";
    case KeyType::string:
      return "string";
    case KeyType::path:
      return "path";
    case KeyType::strings:
      return "array of strings";
    case KeyType::choice:
      return "choice";
    case KeyType::string_map:
      return "table of strings";
    case KeyType::table_array:
      return "array of tables";
  }
  return "?";
}

std::vector<std::string> changed_keys(const Config& a, const Config& b, Reload reload) {
  const auto& schema = config_schema();
  std::vector<std::string> out;
  for (const auto& row : schema) {
    if (row.reload != reload || row.in_array || !row.get) continue;
    const bool differs = row.get(a) != row.get(b);
    if (row.type != KeyType::table_array || differs || !row.keep_first) {
      if (differs) out.push_back(row.name());
      continue;
    }
    // As many entries in both: each one's fields, read from copies that end
    // with it (a field's get reads the last entry).
    const auto count = static_cast<std::size_t>(std::get<std::int64_t>(row.get(a)));
    for (std::size_t n = 1; n <= count; ++n) {
      Config first_a = a;
      Config first_b = b;
      row.keep_first(first_a, n);
      row.keep_first(first_b, n);
      for (const auto& field : schema)
        if (field.in_array && field.table == row.name() && field.get && field.get(first_a) != field.get(first_b))
          out.push_back(row.name() + "[" + std::to_string(n - 1) + "]." + field.key);
    }
  }
  return out;
}

std::string_view reload_name(Reload reload) noexcept { return reload == Reload::sighup ? "SIGHUP" : "restart"; }

std::optional<std::pair<std::string, std::string>> split_host_port(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
  std::string host = text.substr(0, colon);
  const std::string port = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) return std::nullopt;
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return std::nullopt;
  }
  char* end = nullptr;
  const long n = std::strtol(port.c_str(), &end, 10);
  if (*end != '\0' || n < 1 || n > 65535) return std::nullopt;
  return std::pair(host, port);
}

}  // namespace kortti::daemon
