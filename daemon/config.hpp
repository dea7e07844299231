#pragma once

// Internal to daemon/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_DAEMON) && !defined(KORTTI_WHITE_BOX)
#error "daemon/config.hpp is internal to daemon/"
#endif

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "pkcs11/pkcs11.hpp"
#include "policy/policy.hpp"
#include "service/service.hpp"
#include "signature/signature.hpp"

namespace kortti::daemon {

// Every key of korttid.toml, with the defaults that apply when it is absent.
// daemon/config_schema.cpp declares each key (type, default, reload) and how
// it is stored here; a test holds these defaults to it.
struct Config {
  std::string path;  // the file it came from; empty for built-in defaults

  struct Ipc {
    std::string socket = "/run/korttid/korttid.sock";
    mode_t socket_mode = 0660;
    std::string socket_group;  // empty: leave the group as created
    std::size_t max_message_bytes = 16 * 1024 * 1024;
    std::size_t max_connections = 64;
    std::size_t max_connections_per_uid = 16;
    std::size_t log_lines_per_second_per_uid = 20;
    std::chrono::seconds idle_timeout{300};
    std::size_t max_inflight_per_connection = 32;
    std::size_t max_pin_requests_per_uid = 4;
    std::chrono::seconds request_timeout{120};
    std::chrono::seconds shutdown_grace{10};
  } ipc;

  struct Access {
    std::vector<std::string> read{"*"};
    std::vector<std::string> session{"*"};
    std::vector<std::string> sign{"*"};
    std::vector<std::string> admin{"uid:0"};
  } access;

  struct Pkcs11 {
    std::vector<std::string> modules{"/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"};
    pkcs11::UnblockStyle unblock_style = pkcs11::UnblockStyle::set_pin_unlogged;
  } pkcs11;

  struct Session {
    std::chrono::seconds lifetime{std::chrono::hours(8)};
    std::chrono::seconds idle_timeout{std::chrono::minutes(30)};
  } session;

  struct Pin {
    std::string pinentry = "pinentry";
    std::string tty;
    std::chrono::seconds timeout{60};
    int prompt_attempts = 3;
    bool client_may_send = true;
    bool client_may_send_authentication = true;
    service::PinpadFor pinpad_for = service::PinpadFor::seat;
  } pin;

  struct Pcsc {
    bool enabled = true;
    // [[pcsc.reader]]: readers whose feature list is wrong.
    struct Reader {
      std::string name;  // prefix of the PC/SC reader name
      std::optional<bool> pinpad;
    };
    std::vector<Reader> readers;
    // [[pcsc.card_type]]: ATRs to know besides the built-in Finnish ones.
    struct CardType {
      std::string atr;   // hex
      std::string mask;  // hex, same length; empty: exact match
      std::string name;
      std::string description;
    };
    std::vector<CardType> card_types;
  } pcsc;

  struct Log {
    std::string level = "info";
    std::string target = "stderr";  // or "journal"
  } log;

  struct Audit {
    std::string file;  // empty: audit lines go to the main log
    std::size_t denial_lines_per_second_per_uid = 1;
  } audit;

  // [identity], [identity.card_types]
  policy::IdentityMapping identity;
  // [trust]
  policy::TrustOptions trust{"/etc/korttid/trust", "/etc/korttid/intermediates", std::chrono::seconds(300)};
  // [revocation], [revocation.fail_mode]
  policy::RevocationOptions revocation;
  // [registry]
  std::string registry_database = "/var/lib/korttid/registry.sqlite";
  // [registry] max_age_h, when_stale; [policy.prescription]
  policy::Rules rules = default_rules();

  // [signature]
  signature::XmlOptions signature;
  std::size_t max_held_bytes = 128 * 1024 * 1024;
  struct Batch {
    std::size_t max_items = 50;
    std::chrono::seconds max_time{std::chrono::minutes(5)};
    bool operator==(const Batch&) const = default;
  } batch;

  // [tls], [[tls.upstream]]
  struct Tls {
    bool enabled = false;
    std::chrono::seconds handshake_timeout{30};
    std::size_t max_tunnels = 16;
    std::size_t max_tunnels_per_uid = 8;
    struct Upstream {
      std::string name;
      std::string connect;      // host:port
      std::string server_name;  // empty: the host of connect
      std::string ca_file;
      bool system_roots = false;  // the system's roots too (OpenSSL's default paths)
      std::string listen;         // a Unix socket path
      std::string min_version = "1.2";
      std::vector<std::string> alpn;
      std::vector<std::string> access{"*"};  // as [access] entries
    };
    std::vector<Upstream> upstreams;
  } tls;

  // [scs]: the SCS interface for browser EHRs (per-user instances only)
  struct Scs {
    bool enabled = false;
    std::uint16_t port = 53952;
    std::vector<std::string> allowed_origins;
    // As written: ${XDG_DATA_HOME} is expanded when the listener starts.
    std::string certificate = "${XDG_DATA_HOME}/kortti/scs/localhost.pem";
    std::string key = "${XDG_DATA_HOME}/kortti/scs/localhost.key";
    std::size_t max_body_bytes = 8 * 1024 * 1024;
    std::size_t max_connections = 16;
    int signatures_per_minute = 20;
    std::chrono::seconds request_timeout{120};
  } scs;

  static policy::Rules default_rules();
};

// All problems found in a config file, each "FILE:LINE: KEY: what is wrong".
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<std::string> problems);
  [[nodiscard]] const std::vector<std::string>& problems() const noexcept { return problems_; }

 private:
  std::vector<std::string> problems_;
};

// "host:port" (an IPv6 address in brackets) as {host, port}; nothing for
// anything else.
std::optional<std::pair<std::string, std::string>> split_host_port(const std::string& text);

// Reads and checks a config file. Unknown keys and bad values are errors.
Config load_config(const std::string& path);

}  // namespace kortti::daemon
