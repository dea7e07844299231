#include "ipc/convert.hpp"

#include "common/encoding.hpp"

namespace kortti::ipc {

Json to_json(const pkcs11::ModuleStatus& m) {
  Json j = {{"path", wstr(m.path)}, {"loaded", m.loaded}};
  if (m.loaded) {
    j["description"] = wstr(m.description);
    j["manufacturer"] = wstr(m.manufacturer);
    j["version"] = wstr(m.library_version);
  } else {
    j["error"] = wstr(m.error);
  }
  return j;
}

Json to_json(const pkcs11::PinStatus& pin) {
  Json user = {{"locked", pin.locked}, {"count_low", pin.count_low}, {"final_try", pin.final_try}};
  if (pin.tries_left) user["tries_left"] = *pin.tries_left;
  if (pin.max_length > 0) {
    user["min_length"] = pin.min_length;
    user["max_length"] = pin.max_length;
  }
  return user;
}

Json to_json(const pkcs11::TokenInfo& t) {
  Json j = {{"token_id", wstr(t.token_id)},
            {"reader", t.reader ? Json(wstr(*t.reader)) : Json(nullptr)},
            {"label", wstr(t.label)},
            {"manufacturer", wstr(t.manufacturer)},
            {"model", wstr(t.model)},
            {"serial", wstr(t.serial)},
            {"module", wstr(t.module)},
            {"slot_id", t.slot_id},
            {"slot_description", wstr(t.slot_description)},
            {"login_required", t.login_required},
            {"logged_in", t.logged_in},
            {"pinpad", t.pinpad},
            {"rsa_pss", t.rsa_pss},
            {"pins", {{"user", to_json(t.user_pin)}}}};
  if (t.session_expires_at) j["session_expires_at"] = wstr(to_rfc3339(*t.session_expires_at));
  if (t.session_owner) j["session_uid"] = *t.session_owner;
  return j;
}

Json to_json(const pkcs11::CertificateInfo& c) {
  Json purposes = Json::array();
  for (auto p : c.purposes) purposes.push_back(wstr(pkcs11::name_of(p)));
  Json j = {{"cert_id", wstr(c.cert_id)},
            {"token_id", wstr(c.token_id)},
            {"label", wstr(c.label)},
            {"subject", wstr(c.subject)},
            {"issuer", wstr(c.issuer)},
            {"serial", wstr(c.serial)},
            {"not_before", wstr(to_rfc3339(c.not_before))},
            {"not_after", wstr(to_rfc3339(c.not_after))},
            {"key_type", wstr(pkcs11::name_of(c.key_type))},
            {"key_bits", c.key_bits},
            {"purposes", std::move(purposes)},
            {"der", wstr(base64_encode(c.der))}};
  if (!c.curve.empty()) j["curve"] = wstr(c.curve);
  return j;
}

Json to_json(const pkcs11::SignResult& r) {
  Json chain = Json::array();
  for (const auto& der : r.certificate.chain) chain.push_back(wstr(base64_encode(der)));
  return Json{{"signature", wstr(base64_encode(r.signature))},
              {"signature_algorithm", wstr(r.signature_algorithm)},
              {"scheme", wstr(pkcs11::name_of(r.scheme))},
              {"cert_id", wstr(r.certificate.cert_id)},
              {"certificate", wstr(base64_encode(r.certificate.der))},
              {"chain", std::move(chain)}};
}

Json to_json(const pcsc::ReaderState& r) {
  return Json{{"name", wstr(r.name)},
              {"card_present", r.card_present},
              {"atr", wstr(hex_encode(r.atr, true))},
              {"card_type", r.card_type ? Json(wstr(*r.card_type)) : Json(nullptr)},
              {"pinpad", r.pinpad}};
}

Json event_params(const pcsc::Event& e) {
  Json j = {{"type", wstr(pcsc::name_of(e.type))}, {"reader", wstr(e.reader)}, {"time", wstr(to_rfc3339(e.time))}};
  if (e.type == pcsc::Event::Type::card_inserted) {
    j["atr"] = wstr(hex_encode(e.atr, true));
    j["card_type"] = e.card_type ? Json(wstr(*e.card_type)) : Json(nullptr);
  }
  return j;
}

Json event_params(const pkcs11::TokenEvent& e) {
  using T = pkcs11::TokenEvent::Type;
  const char* type = e.type == T::present       ? "present"
                     : e.type == T::absent      ? "absent"
                     : e.type == T::logged_in   ? "logged_in"
                     : e.type == T::logged_out  ? "logged_out"
                     : e.type == T::pin_changed ? "changed"
                                                : "unblocked";
  Json j = {{"type", type},
            {"token_id", wstr(e.token.token_id)},
            {"reader", e.token.reader ? Json(wstr(*e.token.reader)) : Json(nullptr)},
            {"time", wstr(to_rfc3339(std::chrono::system_clock::now()))}};
  if (e.type == T::present || e.type == T::absent) j["label"] = wstr(e.token.label);
  if (e.type == T::logged_in && e.token.session_owner) j["uid"] = *e.token.session_owner;
  return j;
}

}  // namespace kortti::ipc
