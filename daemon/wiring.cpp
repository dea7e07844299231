#include "daemon/wiring.hpp"

#include <algorithm>
#include <cctype>

#include "common/encoding.hpp"
#include "common/user_dirs.hpp"

namespace kortti::daemon {

pcsc::MonitorOptions monitor_options(const Config::Pcsc& config) {
  pcsc::MonitorOptions options;
  for (const auto& r : config.readers) options.overrides.push_back({r.name, r.pinpad});
  for (const auto& t : config.card_types) {
    pcsc::AtrPattern p;
    p.atr = *pcsc::parse_hex(t.atr);
    p.mask = t.mask.empty() ? Bytes(p.atr.size(), 0xFF) : *pcsc::parse_hex(t.mask);
    p.card_type = t.name;
    p.description = t.description;
    options.atrs.add(std::move(p));
  }
  return options;
}

std::optional<std::string> reader_for_slot(const std::vector<pcsc::ReaderState>& readers,
                                           std::string_view slot_description) {
  if (slot_description.empty()) return std::nullopt;
  for (const auto& r : readers)
    if (r.name == slot_description) return r.name;
  const pcsc::ReaderState* best = nullptr;
  for (const auto& r : readers)
    if (slot_description.rfind(r.name, 0) == 0 && (best == nullptr || r.name.size() > best->name.size())) best = &r;
  if (best != nullptr) return best->name;
  // A description cut at 64 characters: two readers of one long-named
  // model differ only at the end (" 00 00", " 01 00"), past the cut. A
  // reader guessed wrong would end this card's sessions when the other
  // card is pulled; none leaves the slot scans to notice its removal.
  std::optional<std::string> found;
  for (const auto& r : readers)
    if (std::string_view(r.name).rfind(slot_description, 0) == 0) {
      if (found) return std::nullopt;
      found = r.name;
    }
  return found;
}

std::uint8_t fineid_pin_reference(std::string_view token_label) {
  const std::string lower = ascii_lower(token_label);
  for (const char* word : {"pin2", "allekirjoitus", "signature", "signing"})
    if (lower.find(word) != std::string::npos) return 0x82;
  return 0x11;
}

bool is_fineid_family(std::string_view card_type) {
  return card_type == "dvv_healthcare" || card_type == "fineid_2022" || card_type == "fineid_v3";
}

void connect_pcsc(pcsc::Monitor& monitor, pkcs11::TokenService& tokens) {
  tokens.set_reader_resolver(
      [&monitor](const pkcs11::TokenInfo& t) { return reader_for_slot(monitor.readers(), t.slot_description); });
  tokens.set_pin_counter([&monitor](const pkcs11::TokenInfo& t) -> std::optional<int> {
    if (!t.reader) return std::nullopt;
    for (const auto& r : monitor.readers())
      if (r.name == *t.reader && r.card_type && is_fineid_family(*r.card_type))
        return pcsc::read_fineid_pin_tries(r.name, fineid_pin_reference(t.label));
    return std::nullopt;
  });
  monitor.on_event([&tokens](const pcsc::Event& e) {
    switch (e.type) {
      case pcsc::Event::Type::card_removed:
        tokens.card_removed(e.reader);
        break;
      case pcsc::Event::Type::card_inserted:
      case pcsc::Event::Type::service_up:
      case pcsc::Event::Type::reader_removed:
        tokens.rescan({});
        break;
      default:
        break;
    }
  });
}

ipc::AccessPolicy access_policy(const Config& config) {
  ipc::AccessPolicy policy;
  policy.set(ipc::MethodGroup::read, config.access.read);
  policy.set(ipc::MethodGroup::session, config.access.session);
  policy.set(ipc::MethodGroup::sign, config.access.sign);
  policy.set(ipc::MethodGroup::admin, config.access.admin);
  return policy;
}

ipc::ServerOptions server_options(const Config& config) {
  ipc::ServerOptions o;
  o.max_message_bytes = config.ipc.max_message_bytes;
  o.max_connections = config.ipc.max_connections;
  o.max_connections_per_uid = config.ipc.max_connections_per_uid;
  o.log_lines_per_second_per_uid = config.ipc.log_lines_per_second_per_uid;
  o.idle_timeout = config.ipc.idle_timeout;
  o.max_inflight_per_connection = config.ipc.max_inflight_per_connection;
  o.max_pin_requests_per_uid = config.ipc.max_pin_requests_per_uid;
  o.request_timeout = config.ipc.request_timeout;
  o.access = access_policy(config);
  return o;
}

pkcs11::Options token_options(const Config& config) {
  pkcs11::Options o;
  o.modules = config.pkcs11.modules;
  o.session_lifetime = config.session.lifetime;
  o.session_idle = config.session.idle_timeout;
  o.unblock_style = config.pkcs11.unblock_style;
  return o;
}

service::Options service_options(const Config& config) {
  service::Options o{config.batch.max_items, config.batch.max_time,
                     service::PinOptions{config.pin.prompt_attempts, config.pin.client_may_send,
                                         config.pin.client_may_send_authentication, config.pin.pinpad_for}};
  o.max_held_bytes = config.max_held_bytes;
  // As for requests with a PIN waiting for their turn (ipc.max_message_bytes):
  // one uid cannot take every other user's room.
  o.max_held_bytes_per_uid = 2 * config.ipc.max_message_bytes;
  o.denial_lines_per_second_per_uid = config.audit.denial_lines_per_second_per_uid;
  return o;
}

tls::Options tls_options(const Config& config, std::optional<gid_t> group) {
  tls::Options o;
  o.enabled = config.tls.enabled;
  o.handshake_timeout = config.tls.handshake_timeout;
  o.max_tunnels = config.tls.max_tunnels;
  o.max_tunnels_per_uid = config.tls.max_tunnels_per_uid;
  o.log_lines_per_second_per_uid = config.ipc.log_lines_per_second_per_uid;
  o.socket_mode = config.ipc.socket_mode;
  o.socket_group = group;
  for (const auto& u : config.tls.upstreams) {
    tls::Upstream out;
    out.name = u.name;
    const auto host_port = split_host_port(u.connect);
    out.host = host_port ? host_port->first : u.connect;
    out.port = host_port ? host_port->second : "443";
    out.server_name = u.server_name.empty() ? out.host : u.server_name;
    out.ca_file = u.ca_file;
    out.system_roots = u.system_roots;
    out.listen = u.listen;
    out.min_version = u.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
    out.alpn = u.alpn;
    out.access = Principals::parse(u.access);  // checked when the file was read
    o.upstreams.push_back(std::move(out));
  }
  return o;
}

namespace {

// The per-user data folder, where kortti scs setup writes the listener's
// certificate: $XDG_DATA_HOME, else ~/.local/share.
std::string expand_data_home(std::string value) {
  const std::string var = "${XDG_DATA_HOME}";
  if (auto pos = value.find(var); pos != std::string::npos) {
    value.replace(pos, var.size(), user_data_home());
  }
  return value;
}

}  // namespace

Json scs_status(const Config::Scs& scs, bool user_instance, bool listening, const std::string& error) {
  if (!scs.enabled) return nullptr;
  Json status = {{"state", !user_instance ? "not_served"
                           : listening    ? "listening"
                                          : "failed"},
                 {"port", scs.port},
                 {"certificate", wstr(expand_data_home(scs.certificate))}};
  if (user_instance && !listening) status["error"] = wstr(error);
  return status;
}

scs::Options scs_options(const Config& config) {
  scs::Options o;
  o.enabled = config.scs.enabled;
  o.port = config.scs.port;
  o.allowed_origins = config.scs.allowed_origins;
  o.certificate = expand_data_home(config.scs.certificate);
  o.key = expand_data_home(config.scs.key);
  o.max_body_bytes = config.scs.max_body_bytes;
  o.max_connections = config.scs.max_connections;
  o.signatures_per_minute = config.scs.signatures_per_minute;
  o.request_timeout = config.scs.request_timeout;
  o.log_lines_per_second_per_uid = config.ipc.log_lines_per_second_per_uid;
  return o;
}

}  // namespace kortti::daemon
