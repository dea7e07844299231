// kortti: command-line client for korttid. See `kortti --help`.

#include <openssl/pem.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>

#include "client/client.hpp"
#include "client/pin_entry.hpp"
#include "client/table.hpp"
#include "common/digest.hpp"
#include "common/encoding.hpp"
#include "common/openssl.hpp"
#include "common/version.hpp"

namespace {

using namespace kortti;
using client::Client;
using client::RpcError;

constexpr int kExitError = 1;
constexpr int kExitDenied = 3;        // `kortti check`: the policy says no
constexpr int kExitUnavailable = 69;  // EX_UNAVAILABLE

constexpr const char* kFooter = R"(
kortti talks to korttid, the local smart-card daemon, over its Unix socket.
Every command prints a readable table or summary; add --json for the daemon's
answer as JSON (docs/protocol.md).

PINS
  A PIN is never taken from the command line. kortti asks on the terminal
  with echo off, or reads one line from --pin-fd N (for scripts: a pipe or
  file opened on descriptor N). --pinpad uses the reader's PIN pad. When
  the card has one PIN try left, korttid does not spend it unless the command
  has --final-try: a wrong PIN then locks the card.

SOCKET
  --socket PATH, else $KORTTI_SOCKET, else $XDG_RUNTIME_DIR/korttid/korttid.sock
  if it exists, else /run/korttid/korttid.sock.

EXIT STATUS
  0 success; 1 the daemon refused or failed (its reason is printed);
  2 usage error; 3 `kortti check` or `kortti prescribe`: denied,
  `kortti verify`: not valid; 69 korttid is not reachable.

EXAMPLES
  kortti tokens
  kortti certs --purpose signature
  kortti identity --cert SoftHSM_project-1a2b/02
  kortti check --cert SoftHSM_project-1a2b/02 --atc N02AA01 --atc J01CA04
  kortti professional 10000001
  kortti sign --cert SoftHSM_project-1a2b/02 --in note.txt --out note.sig --cert-out signer.pem
  kortti prescribe --cert SoftHSM_project-1a2b/02 --in resepti.xml --out resepti-signed.xml
  kortti verify --in resepti-signed.xml
  openssl dgst -sha256 -verify <(openssl x509 -pubkey -noout -in signer.pem) -signature note.sig note.txt)";

struct Globals {
  std::string socket;
  bool json = false;
};

std::string text(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return to_std(it->get_ref<const WipingString&>());
}

// The CN of an RFC 2253 subject, for narrow tables.
std::string common_name(const std::string& subject) {
  auto pos = subject.find("CN=");
  if (pos == std::string::npos) return subject;
  std::string out;
  for (std::size_t i = pos + 3; i < subject.size(); ++i) {
    if (subject[i] == '\\' && i + 1 < subject.size()) {
      out += subject[++i];
      continue;
    }
    if (subject[i] == ',') break;
    out += subject[i];
  }
  return out;
}

void print_json(const Json& j) { std::cout << to_std(j.dump(2)) << "\n"; }

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, ByteView data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

void write_pem_certificate(const std::string& path, const Bytes& der) {
  X509Ptr cert = parse_certificate(der);
  if (!cert) throw std::runtime_error("korttid returned a certificate that is not DER");
  BioPtr bio(BIO_new_file(path.c_str(), "w"));
  if (!bio || PEM_write_bio_X509(bio.get(), cert.get()) != 1) throw std::runtime_error("cannot write " + path);
}

// How the user proves presence: --pin-fd, --pinpad, or a prompt when needed.
struct PinOptions {
  int pin_fd = -1;
  bool pinpad = false;
  bool final_try = false;

  void add_to(CLI::App* cmd) {
    auto* fd = cmd->add_option("--pin-fd", pin_fd, "read the PIN from this file descriptor")->option_text("N");
    cmd->add_flag("--pinpad", pinpad, "enter the PIN on the reader's PIN pad")->excludes(fd);
    cmd->add_flag("--final-try", final_try,
                  "spend the PIN's last try when only one is left (a wrong PIN then locks the card)");
  }
  // Adds pin/pinpad to params if given up front; returns whether it did.
  bool apply(Json& params) const {
    if (final_try) params["final_try"] = true;
    if (pinpad) {
      params["pinpad"] = true;
      return true;
    }
    if (pin_fd >= 0) {
      SecretString pin = client::read_pin_from_fd(pin_fd);
      params["pin"] = wstr(pin.view());
      return true;
    }
    return false;
  }
};

// Calls `method`; when the daemon says a PIN is needed and none was given,
// asks for it once on the terminal and tries again.
// `attach`: a params member to send as an attachment (documents).
Json call_with_pin(Client& c, const std::string& method, Json params, const PinOptions& pin, const std::string& what,
                   std::string_view attach = {}) {
  const bool given = pin.apply(params);
  try {
    return c.call_attached(method, params, attach);
  } catch (const RpcError& e) {
    if (given || e.reason() != "pin_required") throw;
  }
  SecretString secret = client::prompt_pin("PIN for " + what + ": ");
  params["pin"] = wstr(secret.view());
  return c.call_attached(method, params, attach);
}

std::string registry_summary(const Json& r) {
  if (!r.is_object()) return "not in use";
  if (!r.value("imported", false)) return "nothing imported";
  return std::to_string(r.value("records", 0)) + " professionals from " + text(r, "source") + ", imported " +
         text(r, "imported_at") + (r.value("stale", false) ? " (STALE)" : "");
}

int cmd_status(Client& c, const Globals& g) {
  const Json s = c.call("system.status");
  if (g.json) return print_json(s), 0;
  std::cout << "korttid up " << s.value("uptime_s", 0) << " s; PC/SC " << text(s, "pcsc") << "; "
            << s.value("readers", 0) << " reader(s), " << s.value("tokens", 0) << " token(s)\n\n";
  client::Table t({"PKCS#11 MODULE", "STATE", "LIBRARY"});
  for (const auto& m : s["modules"])
    t.add({text(m, "path"), m.value("loaded", false) ? "loaded" : "FAILED: " + text(m, "error"),
           m.value("loaded", false) ? text(m, "manufacturer") + " " + text(m, "description") + " " + text(m, "version")
                                    : ""});
  t.print(std::cout);
  std::cout << "\nValvira registry: " << registry_summary(s["registry"]) << "\n";
  return 0;
}

std::string pin_state(const Json& token) {
  const Json user = token["pins"]["user"];
  if (user.value("locked", false)) return "locked";
  if (user.contains("tries_left")) {
    const int n = user["tries_left"].get<int>();
    return std::to_string(n) + (n == 1 ? " try left" : " tries left");
  }
  if (user.value("count_low", false)) return "tries low";
  return "ok";
}

int cmd_tokens(Client& c, const Globals& g) {
  const Json list = c.call("tokens.list");
  if (g.json) return print_json(list), 0;
  if (list.empty()) {
    std::cout << "no tokens (no card inserted, or no PKCS#11 module recognises it)\n";
    return 0;
  }
  client::Table t({"TOKEN ID", "LABEL", "READER", "LOGGED IN", "PIN PAD", "PIN"});
  for (const auto& tok : list)
    t.add({text(tok, "token_id"), text(tok, "label"), tok["reader"].is_string() ? text(tok, "reader") : "-",
           tok.value("logged_in", false) ? "yes" : "no", tok.value("pinpad", false) ? "yes" : "no", pin_state(tok)});
  t.print(std::cout);
  return 0;
}

int cmd_certs(Client& c, const Globals& g, const std::string& token, const std::string& purpose) {
  Json params = Json::object();
  if (!token.empty()) params["token_id"] = wstr(token);
  if (!purpose.empty()) params["purpose"] = wstr(purpose);
  const Json list = c.call("certificates.list", params);
  if (g.json) return print_json(list), 0;
  if (list.empty()) {
    std::cout << "no certificates\n";
    return 0;
  }
  client::Table t({"CERT ID", "SUBJECT", "KEY", "PURPOSES", "VALID UNTIL"});
  for (const auto& cert : list) {
    std::string purposes;
    for (const auto& p : cert["purposes"])
      purposes += (purposes.empty() ? "" : ",") + to_std(p.get_ref<const WipingString&>());
    std::string key = text(cert, "key_type") + "-" + std::to_string(cert.value("key_bits", 0));
    if (cert.contains("curve")) key = "ec " + text(cert, "curve");
    t.add({text(cert, "cert_id"), common_name(text(cert, "subject")), key, purposes,
           text(cert, "not_after").substr(0, 10)});
  }
  t.print(std::cout);
  return 0;
}

struct SignOptions {
  std::string cert;
  std::string in;
  std::string out;
  std::string digest = "sha256";
  std::string scheme;
  std::string cert_out;
  PinOptions pin;
};

int cmd_sign(Client& c, const Globals& g, const SignOptions& o) {
  const auto alg = parse_digest_algorithm(o.digest);
  if (!alg) throw CLI::ValidationError("--digest", "must be sha256, sha384 or sha512");
  // The file is hashed here; only its digest goes to the daemon.
  const Bytes hash = digest(*alg, read_file(o.in));
  Json params = {
      {"cert_id", wstr(o.cert)}, {"digest_algorithm", wstr(o.digest)}, {"digest", wstr(base64_encode(hash))}};
  if (!o.scheme.empty()) params["scheme"] = wstr(o.scheme);
  const Json r = call_with_pin(c, "sign.digest", std::move(params), o.pin, o.cert);
  const auto signature = base64_decode(text(r, "signature"));
  if (!signature) throw std::runtime_error("korttid returned a signature that is not base64");
  write_file(o.out, *signature);
  if (!o.cert_out.empty()) write_pem_certificate(o.cert_out, base64_decode(text(r, "certificate")).value_or(Bytes{}));
  if (g.json) return print_json(r), 0;
  std::cout << "signed " << o.in << " (" << o.digest << " " << hex_encode(hash).substr(0, 16) << "...) with " << o.cert
            << "\n  algorithm " << text(r, "signature_algorithm") << ", " << signature->size() << " bytes -> " << o.out
            << "\n";
  if (!o.cert_out.empty()) std::cout << "  signer certificate -> " << o.cert_out << "\n";
  return 0;
}

int cmd_login(Client& c, const Globals& g, const std::string& token, const PinOptions& pin) {
  Json params = {{"token_id", wstr(token)}};
  if (!pin.apply(params)) {
    SecretString secret = client::prompt_pin("PIN for " + token + ": ");
    params["pin"] = wstr(secret.view());
  }
  const Json r = c.call("session.login", params);
  if (g.json) return print_json(r), 0;
  std::cout << "logged in to " << token << " until " << text(r, "expires_at") << "\n";
  return 0;
}

int cmd_readers(Client& c, const Globals& g) {
  const Json list = c.call("readers.list");
  if (g.json) return print_json(list), 0;
  if (list.empty()) {
    std::cout << "no readers (is pcscd running, and [pcsc] enabled?)\n";
    return 0;
  }
  client::Table t({"READER", "CARD", "CARD TYPE", "PIN PAD", "TOKENS"});
  for (const auto& r : list) {
    std::string tokens;
    for (const auto& id : r["tokens"])
      tokens += (tokens.empty() ? "" : ",") + to_std(id.get_ref<const WipingString&>());
    t.add({text(r, "name"), r.value("card_present", false) ? "yes" : "no",
           r["card_type"].is_string() ? text(r, "card_type") : (r.value("card_present", false) ? "unknown" : "-"),
           r.value("pinpad", false) ? "yes" : "no", tokens.empty() ? "-" : tokens});
  }
  t.print(std::cout);
  return 0;
}

int cmd_events(Client& c, const Globals& g, std::vector<std::string> topics, int count) {
  if (topics.empty()) topics = {"reader", "card", "token", "session"};
  Json list = Json::array();
  for (const auto& t : topics) list.push_back(wstr(t));
  c.call("events.subscribe", {{"topics", list}});
  for (int seen = 0; count <= 0 || seen < count; ++seen) {
    auto event = c.next_event();
    if (!event) break;
    const Json& p = (*event)["params"];
    if (g.json) {
      std::cout << to_std(p.dump()) << std::endl;
      continue;
    }
    std::cout << text(p, "time") << "  " << text(p, "topic") << " " << text(p, "type");
    for (const char* key : {"reader", "token_id", "card_type", "label"})
      if (p.contains(key) && p[key].is_string()) std::cout << "  " << key << "=" << text(p, key);
    std::cout << std::endl;
  }
  return 0;
}

int cmd_logout(Client& c, const Globals& g, const std::string& token) {
  const Json r = c.call("session.logout", {{"token_id", wstr(token)}});
  if (g.json) return print_json(r), 0;
  std::cout << "logged out of " << token << "\n";
  return 0;
}

// One "label  value" line per present value.
void field(const char* label, const std::string& value) {
  if (!value.empty()) std::cout << "  " << label << std::string(16 - std::string(label).size(), ' ') << value << "\n";
}

void print_professional(const Json& p) {
  if (!p.is_object()) {
    std::cout << "Valvira record: none\n";
    return;
  }
  std::cout << "Valvira record " << text(p, "registration_number") << ": " << text(p["name"], "given") << " "
            << text(p["name"], "family") << "\n";
  field("prescriber id", p["prescriber_id"].is_string() ? text(p, "prescriber_id") : "");
  field("SATU", text(p["identifiers"], "satu"));
  auto period = [](const Json& x) {
    return (x["valid_from"].is_string() ? text(x, "valid_from") : "") + " .. " +
           (x["valid_to"].is_string() ? text(x, "valid_to") : "");
  };
  for (const auto& r : p["rights"])
    field("right", text(r, "code") + (r.contains("name") ? " " + text(r, "name") : "") + "  (" + period(r) + ")");
  for (const auto& r : p["restrictions"]) {
    std::string what = "target " + text(r, "target") + (r.contains("target_name") ? " " + text(r, "target_name") : "");
    if (r["object"].is_object()) what += ", " + text(r["object"], "system") + " " + text(r["object"], "code");
    if (r["scope"].is_string()) what += ", scope " + text(r, "scope");
    field("restriction", what + "  (" + period(r) + ")");
  }
  for (const auto& s : p["specialties"]) field("specialty", to_std(s.get_ref<const WipingString&>()));
}

void print_validation(const Json& v) {
  if (!v.is_object()) return;
  std::cout << "Certificate: " << text(v, "status");
  if (v.contains("message")) std::cout << " (" << text(v, "message") << ")";
  std::cout << "\n";
  for (const auto& s : v["chain"]) field("chain", to_std(s.get_ref<const WipingString&>()));
  const Json& r = v["revocation"];
  field("revocation", text(r, "method") + " " + text(r, "status") + (r.value("cached", false) ? " (cached)" : "") +
                          (r.contains("fail_mode") ? ", " + text(r, "fail_mode") + " applied" : "") +
                          (r.contains("reason") ? ": " + text(r, "reason") : ""));
}

void print_reasons(const char* title, const Json& list) {
  if (list.empty()) return;
  std::cout << title << ":\n";
  for (const auto& r : list) std::cout << "  - " << text(r, "code") << ": " << text(r, "message") << "\n";
}

int cmd_identity(Client& c, const Globals& g, const std::string& cert, const std::string& action) {
  Json params = {{"cert_id", wstr(cert)}};
  if (!action.empty()) params["action"] = wstr(action);
  const Json r = c.call("certificates.identity", params);
  if (g.json) return print_json(r), 0;
  const Json& id = r["identity"];
  std::cout << text(id["name"], "common") << "\n";
  field("title", text(id, "title"));
  field("organisation", text(id, "organisation"));
  field("SATU", text(id, "satu"));
  field("registration", text(id, "registration_number"));
  field("card type", text(id, "card_type"));
  print_validation(r["validation"]);
  std::cout << "  (validated for " << text(r, "action") << ")\n";
  print_professional(r["professional"]);
  std::cout << "Valvira registry: " << registry_summary(r["registry"]) << "\n";
  return 0;
}

struct CheckOptions {
  std::string cert;
  std::string number;
  std::string action = "sign.prescription";
  std::vector<std::string> atc;
  std::vector<std::string> classes;
  std::string workplace;
  bool supervised = false;
};

int cmd_check(Client& c, const Globals& g, const CheckOptions& o) {
  Json context = Json::object();
  Json atc = Json::array(), classes = Json::array();
  for (const auto& a : o.atc) atc.push_back(wstr(a));
  for (const auto& m : o.classes) classes.push_back(wstr(m));
  context["atc_codes"] = std::move(atc);
  context["medicine_classes"] = std::move(classes);
  if (!o.workplace.empty()) context["workplace"] = wstr(o.workplace);
  if (o.supervised) context["supervised"] = true;
  Json params = {{"action", wstr(o.action)}, {"context", std::move(context)}};
  if (!o.cert.empty())
    params["cert_id"] = wstr(o.cert);
  else
    params["registration_number"] = wstr(o.number);
  const Json r = c.call("policy.check", params);
  const bool allowed = r.value("allowed", false);
  if (g.json) return print_json(r), allowed ? 0 : kExitDenied;
  std::cout << (allowed ? "ALLOWED" : "DENIED") << ": " << o.action << " by "
            << (r["professional"].is_object()
                    ? text(r["professional"]["name"], "given") + " " + text(r["professional"]["name"], "family") +
                          " (" + text(r["professional"], "registration_number") + ")"
                    : (o.cert.empty() ? o.number : o.cert))
            << "\n";
  print_reasons("Reasons", r["reasons"]);
  print_reasons("Warnings", r["warnings"]);
  if (r.contains("certificate")) print_validation(r["certificate"]);
  std::cout << "Valvira registry: " << registry_summary(r["registry"]) << "\n";
  return allowed ? 0 : kExitDenied;
}

int cmd_professional(Client& c, const Globals& g, const std::string& number) {
  const Json r = c.call("registry.lookup", {{"registration_number", wstr(number)}});
  if (g.json) return print_json(r), 0;
  print_professional(r["professional"]);
  std::cout << "Valvira registry: " << registry_summary(r["registry"]) << "\n";
  return 0;
}

void print_error(const RpcError& e);

struct PrescribeOptions {
  std::string cert;
  std::string in;
  std::string out;
  PinOptions pin;
};

int cmd_prescribe(Client& c, const Globals& g, const PrescribeOptions& o) {
  const Bytes document = read_file(o.in);
  Json params = {{"cert_id", wstr(o.cert)},
                 {"document", wstr(std::string_view(reinterpret_cast<const char*>(document.data()), document.size()))}};
  Json r;
  try {
    r = call_with_pin(c, "sign.prescription", std::move(params), o.pin, o.cert, "document");
  } catch (const RpcError& e) {
    if (e.reason() != "policy_denied" && e.reason() != "certificate_invalid") throw;
    print_error(e);
    std::cerr << "nothing was signed; the PIN was not used\n";
    return kExitDenied;
  }
  const std::string signed_doc = text(r, "document");
  write_file(o.out, ByteView(reinterpret_cast<const unsigned char*>(signed_doc.data()), signed_doc.size()));
  if (g.json) return print_json(r), 0;
  const Json& d = r["decision"];
  std::cout << "ALLOWED: sign_prescription by "
            << (d["professional"].is_object()
                    ? text(d["professional"]["name"], "given") + " " + text(d["professional"]["name"], "family") +
                          " (" + text(d["professional"], "registration_number") + ")"
                    : o.cert)
            << "\n";
  print_reasons("Warnings", d["warnings"]);
  if (d.contains("certificate")) print_validation(d["certificate"]);
  std::cout << "signed " << o.in << " (Kanta CDA signature) -> " << o.out << "\n";
  return 0;
}

struct VerifyOptions {
  std::string in;
  std::string cms;
  std::string content;
};

int cmd_verify(Client& c, const Globals& g, const VerifyOptions& o) {
  Json r;
  if (!o.cms.empty()) {
    Json params = {{"cms", wstr(base64_encode(read_file(o.cms)))}};
    if (!o.content.empty()) params["content"] = wstr(base64_encode(read_file(o.content)));
    r = c.call("verify.cms", params);
  } else {
    const Bytes document = read_file(o.in);
    r = c.call_attached(
        "verify.xml",
        {{"document", wstr(std::string_view(reinterpret_cast<const char*>(document.data()), document.size()))}},
        "document");
  }
  const bool valid = r.value("valid", false);
  if (g.json) return print_json(r), valid ? 0 : kExitDenied;
  const bool xml = o.cms.empty();
  const Json& list = xml ? r["signatures"] : r["signers"];
  std::size_t n = 0;
  for (const auto& s : list) {
    std::cout << (xml ? "Signature " + text(s, "id") : "Signer " + std::to_string(++n)) << ": "
              << (s.value("valid", false) ? "VALID" : "NOT VALID") << "\n";
    if (s.contains("subject")) field("signer", text(s, "subject"));
    field("signature value", text(s, "signature_value"));
    if (xml)
      for (const auto& ref : s["references"]) field("reference", "\"" + text(ref, "uri") + "\" " + text(ref, "status"));
    else
      for (const char* k : {"content_digest", "signing_certificate", "signing_time"}) field(k, text(s, k));
    if (s.contains("message")) field("why", text(s, "message"));
    print_validation(s["validation"]);
  }
  std::cout << (valid ? "VALID" : "NOT VALID") << "\n";
  return valid ? 0 : kExitDenied;
}

void print_error(const RpcError& e) {
  std::cerr << "kortti: " << e.what() << " (" << e.reason();
  if (e.data().contains("tries_left")) {
    const int n = e.data()["tries_left"].get<int>();
    std::cerr << ", " << n << (n == 1 ? " try left" : " tries left");
  }
  std::cerr << ")\n";
  if (e.data().value("detail", WipingString()) == "final_try_not_confirmed")
    std::cerr << "kortti: a wrong PIN now locks the card; if you are sure of the PIN, run the command again "
                 "with --final-try\n";
  if (e.data().contains("reasons"))
    for (const auto& r : e.data()["reasons"])
      std::cerr << "  - " << text(r, "code") << ": " << text(r, "message") << "\n";
}

// --- the commands: each defines its options and returns what runs it ---

// Runs a parsed command against korttid. `check` (optional) refuses a
// combination of options CLI11 cannot express, before korttid is contacted.
struct Runner {
  std::function<int(Client&, const Globals&)> run;
  std::function<std::optional<std::string>()> check;
};
using Define = Runner (*)(CLI::App& cmd);

const std::vector<std::string> kActions = {"authenticate", "sign.document", "sign.prescription"};

Runner define_status(CLI::App&) { return {cmd_status, {}}; }
Runner define_readers(CLI::App&) { return {cmd_readers, {}}; }
Runner define_tokens(CLI::App&) { return {cmd_tokens, {}}; }

Runner define_certs(CLI::App& cmd) {
  auto o = std::make_shared<std::pair<std::string, std::string>>();  // token, purpose
  cmd.add_option("--token", o->first, "only this token")->option_text("TOKEN_ID");
  cmd.add_option("--purpose", o->second, "authentication or signature")
      ->check(CLI::IsMember({"authentication", "signature"}));
  return {[o](Client& c, const Globals& g) { return cmd_certs(c, g, o->first, o->second); }, {}};
}

Runner define_identity(CLI::App& cmd) {
  auto o = std::make_shared<std::pair<std::string, std::string>>();  // cert, action
  cmd.add_option("--cert", o->first, "cert_id")->required()->option_text("CERT_ID");
  cmd.add_option("--action", o->second, "validate for this action (default: by the key's purpose)")
      ->check(CLI::IsMember(kActions));
  return {[o](Client& c, const Globals& g) { return cmd_identity(c, g, o->first, o->second); }, {}};
}

Runner define_check(CLI::App& cmd) {
  cmd.footer(
      "\nExit status 0 when allowed, 3 when denied; every reason is printed.\n"
      "With --registration only the Valvira rules run, no certificate checks.\n"
      "docs/policy.md explains each rule and reason.");
  auto o = std::make_shared<CheckOptions>();
  auto* cert = cmd.add_option("--cert", o->cert, "cert_id of the signer's certificate")->option_text("CERT_ID");
  auto* number =
      cmd.add_option("--registration", o->number, "Terhikki registration number instead")->option_text("NUMBER");
  cert->excludes(number);
  cmd.add_option("--action", o->action, "sign.prescription (default), sign.document or authenticate")
      ->check(CLI::IsMember(kActions));
  cmd.add_option("--atc", o->atc, "ATC code of the prescription (repeatable)")->option_text("CODE");
  cmd.add_option("--medicine-class", o->classes, "medicine class code (repeatable)")->option_text("CODE");
  cmd.add_option("--workplace", o->workplace, "where the prescription is written");
  cmd.add_flag("--supervised", o->supervised, "the prescriber works under supervision");
  return {[o](Client& c, const Globals& g) { return cmd_check(c, g, *o); },
          [o]() -> std::optional<std::string> {
            if (o->cert.empty() && o->number.empty())
              return "kortti check: give --cert CERT_ID or --registration NUMBER";
            return std::nullopt;
          }};
}

Runner define_professional(CLI::App& cmd) {
  auto number = std::make_shared<std::string>();
  cmd.add_option("NUMBER", *number, "Terhikki registration number")->required();
  return {[number](Client& c, const Globals& g) { return cmd_professional(c, g, *number); }, {}};
}

Runner define_sign(CLI::App& cmd) {
  cmd.footer(
      "\nThe file is hashed locally; only the digest is sent. The output is the raw\n"
      "signature (DER for ECDSA), as `openssl dgst -verify` expects.");
  auto o = std::make_shared<SignOptions>();
  cmd.add_option("--cert", o->cert, "cert_id of the signing certificate")->required()->option_text("CERT_ID");
  cmd.add_option("--in", o->in, "file to sign")->required()->check(CLI::ExistingFile)->option_text("FILE");
  cmd.add_option("--out", o->out, "where to write the signature")->required()->option_text("FILE");
  cmd.add_option("--digest", o->digest, "sha256 (default), sha384 or sha512")
      ->check(CLI::IsMember({"sha256", "sha384", "sha512"}));
  cmd.add_option("--scheme", o->scheme, "pkcs1 or pss for RSA, ecdsa for EC (default by key)")
      ->check(CLI::IsMember({"pkcs1", "pss", "ecdsa"}));
  cmd.add_option("--cert-out", o->cert_out, "also write the signer certificate (PEM)")->option_text("FILE");
  o->pin.add_to(&cmd);
  return {[o](Client& c, const Globals& g) { return cmd_sign(c, g, *o); }, {}};
}

Runner define_prescribe(CLI::App& cmd) {
  cmd.footer(
      "\nkorttid reads the ATC codes, the patient and the author from the document,\n"
      "asks the policy whether the card's holder may prescribe them, and only then\n"
      "signs (hl7fi:signatureCollection, XML-DSig). A denial prints every reason,\n"
      "signs nothing, never uses the PIN, and exits 3.");
  auto o = std::make_shared<PrescribeOptions>();
  cmd.add_option("--cert", o->cert, "cert_id of the signature (PIN2) certificate")->required()->option_text("CERT_ID");
  cmd.add_option("--in", o->in, "the CDA document")->required()->check(CLI::ExistingFile)->option_text("FILE");
  cmd.add_option("--out", o->out, "where to write the signed document")->required()->option_text("FILE");
  o->pin.add_to(&cmd);
  return {[o](Client& c, const Globals& g) { return cmd_prescribe(c, g, *o); }, {}};
}

Runner define_verify(CLI::App& cmd) {
  cmd.footer(
      "\nEvery signature's value, each reference (XML) or the content digest and\n"
      "signing certificate attribute (CMS), and the signer's certificate through\n"
      "korttid's chain and revocation checks. Exit 0 when all hold, 3 when not.");
  auto o = std::make_shared<VerifyOptions>();
  auto* in = cmd.add_option("--in", o->in, "signed XML document")->check(CLI::ExistingFile)->option_text("FILE");
  auto* cms = cmd.add_option("--cms", o->cms, "CMS signature (DER)")->check(CLI::ExistingFile)->option_text("FILE");
  cmd.add_option("--content", o->content, "the signed content of a detached CMS signature")
      ->check(CLI::ExistingFile)
      ->needs(cms)
      ->option_text("FILE");
  in->excludes(cms);
  return {[o](Client& c, const Globals& g) { return cmd_verify(c, g, *o); },
          [o]() -> std::optional<std::string> {
            if (o->in.empty() && o->cms.empty()) return "kortti verify: give --in FILE (XML) or --cms FILE";
            return std::nullopt;
          }};
}

Runner define_login(CLI::App& cmd) {
  auto token = std::make_shared<std::string>();
  auto pin = std::make_shared<PinOptions>();
  cmd.add_option("--token", *token, "token to log in to")->required()->option_text("TOKEN_ID");
  pin->add_to(&cmd);
  return {[token, pin](Client& c, const Globals& g) { return cmd_login(c, g, *token, *pin); }, {}};
}

Runner define_events(CLI::App& cmd) {
  auto topics = std::make_shared<std::vector<std::string>>();
  auto count = std::make_shared<int>(0);
  cmd.add_option("--topic", *topics, "reader, card, token or session (repeatable; default: all)")
      ->check(CLI::IsMember({"reader", "card", "token", "session"}));
  cmd.add_option("--count", *count, "stop after this many events (default: run until interrupted)");
  return {[topics, count](Client& c, const Globals& g) { return cmd_events(c, g, *topics, *count); }, {}};
}

Runner define_logout(CLI::App& cmd) {
  auto token = std::make_shared<std::string>();
  cmd.add_option("--token", *token, "token to log out of")->required()->option_text("TOKEN_ID");
  return {[token](Client& c, const Globals& g) { return cmd_logout(c, g, *token); }, {}};
}

struct Command {
  const char* name;
  const char* help;
  Define define;
};

// Every command of `kortti --help`, in its order.
const Command kCommands[] = {
    {"status", "daemon, PC/SC and PKCS#11 module status", define_status},
    {"readers", "list PC/SC readers, their cards and tokens", define_readers},
    {"tokens", "list tokens (cards) and their PIN state", define_tokens},
    {"certs", "list certificates on the cards", define_certs},
    {"identity", "who a card certificate names, its validation and Valvira record", define_identity},
    {"check", "would the policy let this professional sign? (policy.check)", define_check},
    {"professional", "a professional's record in the Valvira registry", define_professional},
    {"sign", "sign a file's digest with a card key", define_sign},
    {"prescribe", "sign an e-prescription CDA (policy check, then Kanta signature)", define_prescribe},
    {"verify", "verify a signed XML document or a CMS signature", define_verify},
    {"login", "log in to a token for this user (PIN1 session)", define_login},
    {"events", "print reader, card, token and session events as they happen", define_events},
    {"logout", "end this user's session on a token", define_logout},
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kortti - client for korttid, the Finnish healthcare smart-card daemon", "kortti"};
  app.footer(kFooter);
  app.require_subcommand(1);
  Globals g;
  app.add_option("--socket", g.socket, "korttid's socket")->option_text("PATH");
  app.add_flag("--json", g.json, "print the daemon's answer as JSON");
  app.set_version_flag("-V,--version",
                       std::string("kortti ") + kVersion + " (protocol " + std::to_string(kProtocolVersion) + ")");
  std::vector<std::pair<CLI::App*, Runner>> commands;
  for (const Command& command : kCommands) {
    CLI::App* sub = app.add_subcommand(command.name, command.help);
    commands.emplace_back(sub, command.define(*sub));
  }
  CLI11_PARSE(app, argc, argv);

  const auto chosen = std::find_if(commands.begin(), commands.end(), [](const auto& c) { return bool(*c.first); });
  if (chosen == commands.end()) return kExitError;
  const Runner& runner = chosen->second;
  if (runner.check)
    if (auto problem = runner.check()) {
      std::cerr << *problem << "\n";
      return 2;
    }
  const std::string socket = g.socket.empty() ? Client::default_socket() : g.socket;
  try {
    Client c(socket);
    c.call("system.hello", {{"client", "kortti"}, {"version", kVersion}});
    return runner.run(c, g);
  } catch (const RpcError& e) {
    print_error(e);
    return kExitError;
  } catch (const std::system_error& e) {
    std::cerr << "kortti: " << e.what() << "\n";
    return kExitUnavailable;
  } catch (const std::exception& e) {
    std::cerr << "kortti: " << e.what() << "\n";
    return kExitError;
  }
}
