// The protocol of docs/protocol.md on one screen: each method, who may call
// it (docs/configuration.md [access]), what korttid must run with to offer
// it, and its handler.

#include "ipc/methods.hpp"

namespace kortti::ipc {

namespace {

using G = MethodGroup;
using N = Needs;

constexpr Method kProtocol[] = {
    {"system.hello", G::read, N::nothing, system_hello},
    {"system.status", G::read, N::nothing, system_status},
    {"events.subscribe", G::read, N::nothing, events_subscribe},
    {"events.unsubscribe", G::read, N::nothing, events_unsubscribe},
    {"readers.list", G::read, N::nothing, readers_list},
    {"tokens.list", G::read, N::nothing, tokens_list},
    {"certificates.list", G::read, N::nothing, certificates_list},
    {"certificates.identity", G::read, N::policy, certificates_identity},
    {"certificates.share", G::sign, N::nothing, certificates_share},
    {"session.login", G::session, N::nothing, session_login},
    {"session.logout", G::session, N::nothing, session_logout},
    {"pin.status", G::read, N::nothing, pin_status},
    {"pin.change", G::session, N::nothing, pin_change},
    {"pin.unblock", G::session, N::nothing, pin_unblock},
    {"auth.token", G::session, N::policy, auth_token},
    {"auth.verify", G::read, N::policy, auth_verify},
    {"sign.digest", G::sign, N::nothing, sign_one},
    {"sign.data", G::sign, N::nothing, sign_one},
    {"sign.xml", G::sign, N::documents, sign_one},
    {"sign.cms", G::sign, N::documents, sign_one},
    {"sign.prescription", G::sign, N::documents, sign_one},
    {"sign.batch", G::sign, N::documents, sign_batch},
    {"verify.xml", G::read, N::documents, verify_xml},
    {"verify.cms", G::read, N::documents, verify_cms},
    {"tls.upstreams", G::read, N::tunnels, tls_upstreams},
    {"tls.tunnels", G::read, N::tunnels, tls_tunnels},
    {"policy.check", G::read, N::policy, policy_check},
    {"registry.lookup", G::read, N::policy, registry_lookup},
};

}  // namespace

std::span<const Method> protocol() { return kProtocol; }

}  // namespace kortti::ipc
