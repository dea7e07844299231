// The conditions of the cards a user should hear of (commands.hpp): shared
// by `kortti watch` and `kortti doctor`.

#include <chrono>

#include "client/commands.hpp"
#include "common/subject.hpp"
#include "common/time.hpp"

namespace kortti::cli {

std::vector<Condition> card_conditions(const Json& tokens, const Json& certificates, const Json& status,
                                       int expiry_days) {
  std::vector<Condition> out;
  for (const auto& token : tokens) {
    const Json& pin = token["pins"]["user"];
    const std::string id = text(token, "token_id");
    const std::string who = text(token, "label") + " (" + id + ")";
    if (pin.value("locked", false))
      out.push_back({"locked:" + id, "PIN locked",
                     "The PIN of " + who + " is locked: unblock it with the activation code (kortti pin unblock).",
                     true, true, "kortti pin unblock --token " + id});
    else if (pin.value("final_try", false) || pin.value("tries_left", 0) == 1)
      out.push_back({"final:" + id, "PIN about to lock",
                     "The PIN of " + who + " has one try left: a wrong PIN now locks the card.", true, false,
                     "type only a PIN you are sure of; a right one resets the count"});
  }
  const auto now = std::chrono::system_clock::now();
  const auto horizon = now + std::chrono::hours(24) * expiry_days;
  for (const auto& cert : certificates) {
    const auto not_after = parse_rfc3339(text(cert, "not_after"));
    if (!not_after || *not_after > horizon) continue;
    const bool expired = *not_after <= now;
    out.push_back({"expiry:" + text(cert, "cert_id"), expired ? "Card certificate expired" : "Card certificate expires",
                   "The certificate " + text(cert, "cert_id") + " of " + common_name(text(cert, "subject")) +
                       (expired ? " expired on " : " expires on ") + text(cert, "not_after").substr(0, 10) + ".",
                   expired, expired, "a new card comes from the organisation's registration point"});
  }
  if (status.contains("registry") && status["registry"].is_object() && status["registry"].value("stale", false))
    out.push_back({"registry", "Registry extract stale",
                   "korttid's copy of the Valvira registry is stale: prescriptions may be refused until it is "
                   "imported again.",
                   false, false, kRegistryImportHint});
  return out;
}

std::vector<Condition> card_conditions(client::Client& c, int expiry_days) {
  const Json tokens = c.call("tokens.list");
  const Json certificates = c.call("certificates.list");
  const Json status = c.call("system.status");
  return card_conditions(tokens, certificates, status, expiry_days);
}

}  // namespace kortti::cli
