#pragma once

// Internal to daemon/ (docs/architecture.md, Layering).
#if !defined(KORTTI_COMPONENT_DAEMON) && !defined(KORTTI_WHITE_BOX)
#error "daemon/wiring.hpp is internal to daemon/"
#endif

// How korttid's components are connected: PC/SC events drive the PKCS#11
// side, and PC/SC knowledge (readers, card types, PIN counters) fills in what
// PKCS#11 cannot tell.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.hpp"
#include "daemon/config.hpp"
#include "ipc/ipc.hpp"
#include "pcsc/pcsc.hpp"
#include "pkcs11/pkcs11.hpp"
#include "scs/scs.hpp"
#include "service/service.hpp"
#include "tls/tls.hpp"

namespace kortti::daemon {

pcsc::MonitorOptions monitor_options(const Config::Pcsc& config);

// Card inserted: scan slots (the new token appears). Card removed: fail what
// is in flight on its token at once, then scan (the token goes). pcscd back:
// scan. Also installs the reader resolver and the PIN counter.
void connect_pcsc(pcsc::Monitor& monitor, pkcs11::TokenService& tokens);

// The PC/SC reader of a PKCS#11 slot. Modules name slots after readers
// (OpenSC: the reader name; others append a suffix, or cut it at 64
// characters): an exact match wins, then the longest reader name the slot
// description starts with, then a reader name that starts with the whole
// (truncated) description.
std::optional<std::string> reader_for_slot(const std::vector<pcsc::ReaderState>& readers,
                                           std::string_view slot_description);

// Which card PIN a PKCS#11 token stands for, as FINEID references it:
// 0x82 (PIN2, signature) when the token label names the signature PIN,
// else 0x11 (PIN1). An assumption about vendor modules' labels; see
// docs/cards-and-readers.md.
std::uint8_t fineid_pin_reference(std::string_view token_label);

// Card types whose PIN counter is read with FINEID's PIN-info GET DATA.
bool is_fineid_family(std::string_view card_type);

// Who may call which method group, from [access] (also at a reload).
ipc::AccessPolicy access_policy(const Config& config);
// The socket server's options from [ipc] and [access].
ipc::ServerOptions server_options(const Config& config);
// The token service's from [pkcs11] and [session].
pkcs11::Options token_options(const Config& config);
// The service core's from [batch] and [pin].
service::Options service_options(const Config& config);

// The tunnels' options from [tls] (checked by load_config), their sockets
// made like the main one ([ipc] socket_mode, `group`).
tls::Options tls_options(const Config& config, std::optional<gid_t> group);

// The SCS listener's options from [scs].
scs::Options scs_options(const Config& config);
// system.status's "scs": null when [scs] is off; else `state` ("listening",
// "failed" with `error`, or "not_served" by a system instance), `port` and
// `certificate` (the path, expanded).
Json scs_status(const Config::Scs& scs, bool user_instance, bool listening, const std::string& error);

}  // namespace kortti::daemon
