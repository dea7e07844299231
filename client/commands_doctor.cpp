// `kortti doctor`: what stands between this user and a working card, found
// in the order a helpdesk would look (the socket, the daemon, PC/SC, the
// modules, readers, cards, PINs, certificates, the registry), each finding
// with what to do about it. It connects by itself, so it can also say why
// korttid cannot be reached.

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <system_error>

#include <openssl/pem.h>

#include "client/commands.hpp"
#include "common/openssl.hpp"
#include "common/subject.hpp"
#include "common/version.hpp"

namespace kortti::cli {

namespace {

using client::Client;

constexpr int kExitUnreachable = 69;  // as every kortti command: EX_UNAVAILABLE

enum class Verdict { ok, warn, fail };

struct Finding {
  Verdict verdict;
  std::string check;  // what was looked at: "socket", "reader", ...
  std::string message;
  std::string hint;  // what to do; empty when nothing is to be done
};

class Report {
 public:
  explicit Report(bool json) : json_(json) {}

  void add(Verdict verdict, std::string check, std::string message, std::string hint = {}) {
    findings_.push_back({verdict, std::move(check), std::move(message), std::move(hint)});
    if (json_) return;
    const Finding& f = findings_.back();
    static constexpr const char* kWords[] = {"ok  ", "warn", "FAIL"};
    std::cout << kWords[static_cast<int>(f.verdict)] << "  " << f.check
              << std::string(f.check.size() < 14 ? 14 - f.check.size() : 1, ' ') << f.message << "\n";
    if (!f.hint.empty()) std::cout << std::string(20, ' ') << "-> " << f.hint << "\n";
  }

  // 0 when nothing failed; warnings are for the user to weigh.
  int finish() const {
    bool failed = false;
    Json all = Json::array();
    for (const Finding& f : findings_) {
      failed = failed || f.verdict == Verdict::fail;
      static constexpr const char* kNames[] = {"ok", "warn", "fail"};
      Json j = {{"check", f.check}, {"verdict", kNames[static_cast<int>(f.verdict)]}, {"message", f.message}};
      if (!f.hint.empty()) j["hint"] = f.hint;
      all.push_back(std::move(j));
    }
    if (json_) print_json(all);
    return failed ? kExitError : 0;
  }

  static constexpr int kExitError = 1;

 private:
  bool json_;
  std::vector<Finding> findings_;
};

std::string group_name(gid_t gid) {
  const group* gr = ::getgrgid(gid);
  return gr != nullptr ? gr->gr_name : "gid " + std::to_string(gid);
}

// Why connecting failed, in the words of whoever has to mend it.
void explain_connect_failure(Report& report, const std::string& socket, int error) {
  if (error == ENOENT) {
    report.add(Verdict::fail, "socket", "no socket at " + socket + ": korttid is not running there",
               "system service: systemctl status korttid.socket; per-user instance: systemctl --user status "
               "korttid-user.socket; another socket: kortti --socket PATH or $KORTTI_SOCKET");
  } else if (error == EACCES || error == EPERM) {
    struct stat st {};
    if (::stat(socket.c_str(), &st) != 0) {
      report.add(Verdict::fail, "socket",
                 "permission denied at " + socket + ": a folder on the way is closed to " + user_name(),
                 "ls -ld each folder of the path; the system socket's folder /run/korttid is 0755");
      return;
    }
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    report.add(Verdict::fail, "socket",
               "permission denied at " + socket + " (mode " + mode + ", group " + group_name(st.st_gid) +
                   "): " + user_name() + " may not connect",
               "an admin adds you to the socket's group (adduser " + user_name() + " " + group_name(st.st_gid) +
                   "), then you log in again");
  } else if (error == EAGAIN) {
    report.add(Verdict::fail, "socket",
               "korttid takes no new connections at " + socket + ": its queue of them is full (stopped or stuck)",
               "systemctl status korttid, or journalctl -u korttid, shows why");
  } else if (error == ECONNREFUSED) {
    report.add(Verdict::fail, "socket", "nothing listens at " + socket + ": korttid stopped and left its socket",
               "systemctl restart korttid.socket (or start korttid again)");
  } else {
    report.add(Verdict::fail, "socket", "cannot connect to " + socket + ": " + std::strerror(error));
  }
}

// Which korttid the socket belongs to, and why kortti chose it.
std::string instance(const Globals& g, const std::string& socket) {
  if (!g.socket.empty()) return "named by --socket";
  if (const char* env = std::getenv("KORTTI_SOCKET"); env != nullptr && *env != '\0') return "named by $KORTTI_SOCKET";
  if (socket == Client::kSystemSocket) return "the system service";
  return "the per-user instance";
}

void check_daemon(Report& report, Client& c) {
  const Json hello = c.call("system.hello", {{"client", "kortti doctor"}, {"version", kVersion}});
  const int protocol = hello.value("protocol", 0);
  if (protocol != kProtocolVersion)
    report.add(Verdict::warn, "daemon",
               "korttid " + text(hello, "version") + " speaks protocol " + std::to_string(protocol) + ", this kortti " +
                   std::to_string(kProtocolVersion),
               "install the same version of kortti and korttid");
  else
    report.add(Verdict::ok, "daemon", "korttid " + text(hello, "version") + ", protocol " + std::to_string(protocol));
}

void check_status(Report& report, const Json& status) {
  const std::string pcsc = text(status, "pcsc");
  if (pcsc == "ok")
    report.add(Verdict::ok, "pcsc", "pcscd answers");
  else if (pcsc == "disabled")
    report.add(Verdict::warn, "pcsc", "PC/SC is off in korttid's configuration ([pcsc] enabled = false)",
               "readers, card events and PIN pads need it on");
  else
    report.add(Verdict::fail, "pcsc", "korttid cannot reach pcscd",
               "systemctl status pcscd.socket; if pcscd runs, its polkit policy may refuse user korttid "
               "(the rule 50-korttid-pcscd.rules allows it; journalctl -u pcscd names refusals)");
  if (status["modules"].empty())
    report.add(Verdict::fail, "modules", "no PKCS#11 module is configured",
               "[pkcs11] modules in /etc/korttid/korttid.toml (docs/pkcs11.md)");
  for (const auto& m : status["modules"]) {
    if (m.value("loaded", false))
      report.add(Verdict::ok, "module",
                 text(m, "path") + ": " + text(m, "manufacturer") + " " + text(m, "description"));
    else
      report.add(Verdict::fail, "module", text(m, "path") + " did not load: " + text(m, "error"),
                 "is its package installed (OpenSC: opensc-pkcs11)? p11-kit list-modules shows what p11-kit finds");
  }
}

void check_readers(Report& report, Client& c) {
  const Json readers = c.call("readers.list");
  if (readers.empty()) {
    report.add(Verdict::fail, "reader", "no card reader", "plug one in; pcsc_scan (pcsc-tools) shows what pcscd sees");
    return;
  }
  bool any_card = false;
  for (const auto& r : readers) {
    const bool card = r.value("card_present", false);
    any_card = any_card || card;
    if (!card)
      report.add(Verdict::ok, "reader", text(r, "name") + ": no card");
    else if (r["tokens"].empty())
      report.add(Verdict::warn, "reader",
                 text(r, "name") + ": a card (ATR " + text(r, "atr") + ") that no PKCS#11 module knows",
                 "is it a healthcare professional card, the right way in? docs/cards-and-readers.md lists the cards "
                 "and their modules");
    else {
      std::string tokens;
      for (const auto& id : r["tokens"])
        tokens += (tokens.empty() ? "" : ", ") + to_std(id.get_ref<const WipingString&>());
      report.add(Verdict::ok, "reader",
                 text(r, "name") + ": " + (r["card_type"].is_string() ? text(r, "card_type") : "a card") +
                     (r.value("pinpad", false) ? ", PIN pad" : "") + "; token " + tokens);
    }
  }
  if (!any_card) report.add(Verdict::warn, "card", "no card in any reader", "insert the card, chip first, face up");
}

// The conditions (card_conditions) by key, so each token, certificate and
// the registry is reported once: as its condition, or as fine.
using Conditions = std::map<std::string, Condition>;

// A condition that keeps the card from its work fails; one that warns of
// what is coming (one PIN try left, a certificate expiring) is a warning.
void report_condition(Report& report, const std::string& check, const Condition& condition) {
  report.add(condition.blocking ? Verdict::fail : Verdict::warn, check, condition.body, condition.hint);
}

void check_tokens(Report& report, const Json& tokens, const Conditions& conditions) {
  for (const auto& t : tokens) {
    const std::string id = text(t, "token_id");
    if (const auto it = conditions.find("locked:" + id); it != conditions.end())
      report_condition(report, "pin", it->second);
    else if (const auto final = conditions.find("final:" + id); final != conditions.end())
      report_condition(report, "pin", final->second);
    else
      report.add(Verdict::ok, "pin", id + ": " + pin_state(t));
  }
}

// What to do about a certificate that does not validate.
std::string certificate_advice(const std::string& status, const Json& cert) {
  if (status == "untrusted")
    return "no root in [trust] anchors (/etc/korttid/trust by default) leads to its issuer \"" +
           common_name(text(cert, "issuer")) +
           "\": add that CA's root, and any intermediate to [trust] intermediates; DVV renews its roots, so a "
           "root that expired or was replaced is the usual cause";
  if (status == "not_yet_valid")
    return "is this computer's clock right? (timedatectl) The certificate is valid from " +
           text(cert, "not_before").substr(0, 10);
  if (status == "expired") return "the card needs renewing: a new card comes from the registration point";
  if (status == "revoked")
    return "the card is revoked: it cannot be used; a new card comes from the registration point";
  if (status == "revocation_unknown")
    return "OCSP or CRL could not be reached: is the network up? ([revocation] in korttid.toml)";
  return "docs/policy.md explains each status";
}

void check_certificates(Report& report, Client& c, const Json& certificates, const Conditions& conditions) {
  for (const auto& cert : certificates) {
    const std::string id = text(cert, "cert_id");
    const Json answer = c.call("certificates.identity", {{"cert_id", id}});
    const Json& v = answer["validation"];
    const std::string who = common_name(text(cert, "subject")) + " (" + id + ", " + text(answer, "action") + ")";
    const std::string status = text(v, "status");
    const Json& revocation = v["revocation"];
    const std::string checked =
        revocation.is_object() ? ", revocation " + text(revocation, "method") + " " + text(revocation, "status") : "";
    if (status != "valid")
      report.add(Verdict::fail, "certificate",
                 who + ": " + status + (v.contains("message") ? " (" + text(v, "message") + ")" : ""),
                 certificate_advice(status, cert));
    else if (const auto it = conditions.find("expiry:" + id); it != conditions.end())
      report_condition(report, "certificate", it->second);
    else
      report.add(Verdict::ok, "certificate", who + ": valid until " + text(cert, "not_after").substr(0, 10) + checked);
  }
}

void check_registry(Report& report, const Json& registry, const Conditions& conditions) {
  if (const auto it = conditions.find("registry"); it != conditions.end())
    report_condition(report, "registry", it->second);
  else if (!registry.is_object())
    report.add(Verdict::warn, "registry", "korttid reports no registry: its database cannot be read now",
               "korttid registry status; journalctl -u korttid");
  else if (!registry.value("imported", false))
    report.add(Verdict::warn, "registry", "no Valvira registry extract is imported: prescriptions are refused",
               kRegistryImportHint);
  else
    report.add(Verdict::ok, "registry",
               registry_summary(registry) + " (" + std::to_string(registry.value("age_s", 0) / 3600) + " h ago)");
}

// What makes the browsers' localhost certificate anew and has korttid use it.
constexpr const char* kRenewScs = "kortti scs setup, then systemctl --user restart korttid-user";

// The browsers' localhost certificate (kortti scs setup) at `path`:
// browsers refuse an expired one, and nothing else says so.
void check_browser_certificate(Report& report, const std::string& path, int expiry_days) {
  FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) {
    report.add(Verdict::fail, "scs", "the browsers' localhost certificate " + path + " cannot be read", kRenewScs);
    return;
  }
  X509Ptr cert(PEM_read_X509(file, nullptr, nullptr, nullptr));
  std::fclose(file);
  if (!cert) {
    report.add(Verdict::warn, "scs", path + " is not a PEM certificate", kRenewScs);
    return;
  }
  int days = 0;
  int seconds = 0;
  if (ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert.get())) != 1) {
    report.add(Verdict::warn, "scs", "the validity of " + path + " cannot be read", kRenewScs);
    return;
  }
  if (days < 0 || (days == 0 && seconds <= 0))
    report.add(Verdict::warn, "scs", "the browsers' localhost certificate (" + path + ") has expired", kRenewScs);
  else if (days < expiry_days)
    report.add(Verdict::warn, "scs",
               "the browsers' localhost certificate (" + path + ") expires in " + std::to_string(days) + " days",
               std::string("renew it: ") + kRenewScs);
  else
    report.add(Verdict::ok, "scs",
               "the browsers' localhost certificate (" + path + ") is valid for " + std::to_string(days) + " days");
}

// The SCS interface for browser EHRs as korttid reports it (system.status
// "scs"). A korttid that does not serve it (null) is asked nothing more,
// unless this user has set up a certificate in the default place: then it
// is checked all the same, since browsers may reach a per-user instance
// this doctor did not ask.
void check_browsers(Report& report, const Json& scs, int expiry_days) {
  if (!scs.is_object()) {
    const std::string path = scs_default_dir() + "/localhost.pem";
    if (::access(path.c_str(), F_OK) == 0) check_browser_certificate(report, path, expiry_days);
    return;
  }
  const std::string state = text(scs, "state");
  if (state == "not_served") {
    report.add(Verdict::warn, "scs", "[scs] is enabled, but this is a system instance: it does not serve browsers",
               "each user's own instance does: systemctl --user enable --now korttid-user");
    return;
  }
  if (state != "listening") {
    report.add(Verdict::fail, "scs", "the interface for browser EHRs is not served: " + text(scs, "error"), kRenewScs);
    return;
  }
  report.add(Verdict::ok, "scs",
             "browser EHRs are served on https://localhost:" + std::to_string(scs.value("port", 0)));
  check_browser_certificate(report, text(scs, "certificate"), expiry_days);
}

int diagnose(const Globals& g, int expiry_days) {
  Report report(g.json);
  const std::string socket = g.socket.empty() ? Client::default_socket() : g.socket;
  std::unique_ptr<Client> c;
  try {
    c = std::make_unique<Client>(socket, g.timeout());
  } catch (const std::system_error& e) {
    explain_connect_failure(report, socket, e.code().value());
    report.finish();
    return kExitUnreachable;
  } catch (const std::exception& e) {
    report.add(Verdict::fail, "socket", e.what(), "kortti --socket PATH names another socket");
    report.finish();
    return kExitUnreachable;
  }
  report.add(Verdict::ok, "socket", socket + " (" + instance(g, socket) + ")");
  Json browsers;  // system.status's "scs", once korttid said it
  // As for every command: a korttid that does not answer is not reachable.
  bool unanswered = false;
  try {
    check_daemon(report, *c);
    const Json status = c->call("system.status");
    check_status(report, status);
    if (status.contains("scs")) browsers = status["scs"];
    if (text(status, "pcsc") == "ok") check_readers(report, *c);
    const Json tokens = c->call("tokens.list");
    const Json certificates = c->call("certificates.list");
    Conditions conditions;
    for (Condition& condition : card_conditions(tokens, certificates, status, expiry_days))
      conditions.emplace(condition.key, std::move(condition));
    check_tokens(report, tokens, conditions);
    check_certificates(report, *c, certificates, conditions);
    check_registry(report, status["registry"], conditions);
  } catch (const client::RpcError& e) {
    report.add(Verdict::fail, "daemon", "korttid refused: " + std::string(e.what()),
               e.code() == 1040 ? "[access] read in /etc/korttid/korttid.toml decides who may ask" : "");
  } catch (const client::NoAnswer& e) {
    unanswered = true;
    report.add(Verdict::fail, "daemon", std::string("korttid stopped answering: ") + e.what() + " (--timeout)",
               "systemctl status korttid, or journalctl -u korttid, shows why");
  } catch (const std::exception& e) {
    report.add(Verdict::fail, "daemon", std::string("korttid stopped answering: ") + e.what(),
               "journalctl -u korttid shows why");
  }
  check_browsers(report, browsers, expiry_days);
  const int status = report.finish();
  return unanswered ? kExitUnreachable : status;
}

}  // namespace

Runner define_doctor(CLI::App& cmd) {
  auto expiry_days = std::make_shared<int>(30);
  cmd.add_option("--expiry-days", *expiry_days,
                 "warn of a card certificate, or the browsers' localhost certificate (kortti scs setup), that expires "
                 "within this many days")
      ->check(CLI::Range(1, 3650))
      ->capture_default_str();
  cmd.footer(
      "\nEach check prints ok, warn or FAIL, and what to do about it. Exit status 0 when no check\n"
      "failed, 1 when one did, 69 when korttid cannot be reached; with --json, the findings as a\n"
      "JSON array.");
  return {{}, {}, [expiry_days](const Globals& g) { return diagnose(g, *expiry_days); }};
}

}  // namespace kortti::cli
