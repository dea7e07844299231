#pragma once

// policy/: who may sign. The professional identity read from a card
// certificate, the certificate's validation (chain to configured trust
// anchors, validity with clock skew, key usage per action, revocation by OCSP
// and CRL), the Valvira registry (a SQLite store of an imported extract), and
// the rules of sign.prescription. docs/policy.md explains each rule and
// names every assumption.

#include <chrono>
#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/bytes.hpp"
#include "common/error.hpp"
#include "common/json.hpp"
#include "common/result.hpp"
#include "common/task.hpp"
#include "common/time.hpp"

namespace kortti::policy {

// --- identity ---

// Where one value sits in a certificate: "subject:<attribute>" (short name
// such as GN, SN, title, O, serialNumber, or a dotted OID) or
// "san:otherName:<OID>" (a UTF8String or other string otherName), or ""
// for a value not read at all.
struct IdentityMapping {
  std::string given_name = "subject:GN";
  std::string family_name = "subject:SN";
  std::string common_name = "subject:CN";
  std::string title = "subject:title";
  std::string organisation = "subject:O";
  std::string satu = "subject:serialNumber";
  std::string registration_number = "san:otherName:1.2.246.537.26";
  // certificatePolicies OID -> card type ("professional", "staff", ...).
  std::map<std::string, std::string> card_types;
  bool operator==(const IdentityMapping&) const = default;
};

// Throws std::invalid_argument naming the source it cannot use.
void check_mapping_source(const std::string& source);

struct Identity {
  std::string given_name;
  std::string family_name;
  std::string common_name;
  std::string title;
  std::string organisation;
  std::string satu;
  std::string registration_number;
  std::string card_type;  // "" when no policy OID is mapped
  std::vector<std::string> policies;
  bool non_repudiation = false;    // keyUsage
  bool digital_signature = false;  // keyUsage
};

// Throws Error(certificate_invalid) for DER that is not a certificate.
Identity read_identity(ByteView certificate_der, const IdentityMapping& mapping);

// --- validation ---

enum class Action { authenticate, sign_document, sign_prescription };
std::optional<Action> parse_action(std::string_view name);
std::string_view name_of(Action action) noexcept;

enum class FailMode { hard, soft };  // no revocation answer: deny, or allow and say so

struct TrustOptions {
  std::string anchors;        // folder of PEM root certificates
  std::string intermediates;  // folder of PEM intermediate certificates (optional)
  std::chrono::seconds clock_skew{300};
  bool operator==(const TrustOptions&) const = default;
};

// What an OCSP answer must do with the request's nonce. `required`: echo it
// (no nonce, or another, is no answer); `if_present`: a nonce that differs is
// no answer, a missing one is taken (responders that pre-produce answers);
// `off`: none is sent.
enum class OcspNonce { required, if_present, off };

struct RevocationOptions {
  bool ocsp = true;
  bool crl = true;
  std::string ocsp_url;  // override the certificate's AIA; empty: use AIA
  OcspNonce ocsp_nonce = OcspNonce::required;
  std::chrono::seconds timeout{5};       // the whole of one OCSP exchange or CRL download
  std::chrono::seconds max_cache{3600};  // for answers without nextUpdate
  std::vector<std::string> crl_files;    // files, or http:// URLs
  bool crl_fetch = true;                 // from CRL distribution points (http://, file://)
  // A CRL URL that gave nothing is not downloaded again for this long, so a
  // dead or slow host costs one timeout, not one per check.
  std::chrono::seconds crl_retry_after{60};
  std::map<Action, FailMode> fail_mode{{Action::authenticate, FailMode::soft},
                                       {Action::sign_document, FailMode::hard},
                                       {Action::sign_prescription, FailMode::hard}};
  bool operator==(const RevocationOptions&) const = default;
};

struct RevocationResult {
  std::string method;  // "ocsp", "crl" or "none"
  std::string status;  // "good", "revoked", "unknown" (the responder does not know it), "unavailable"
  std::string source;  // URL or file
  std::optional<SystemTime> revoked_at;
  std::string reason;  // CRL reason, or why no answer
  bool cached = false;
  std::optional<std::string> fail_mode;  // "hard-fail"/"soft-fail" when it applied
};

struct ValidationResult {
  // "valid", or the protocol's 1031 detail: expired, not_yet_valid,
  // untrusted, revoked, revocation_unknown, wrong_key_usage.
  std::string status = "valid";
  std::string message;
  std::vector<std::string> chain;  // subjects, leaf first
  RevocationResult revocation;
  [[nodiscard]] bool valid() const noexcept { return status == "valid"; }
};

// Chain, validity, key usage and revocation. Blocking (network): run it off
// the io thread. Thread-safe.
class Validator {
 public:
  Validator(TrustOptions trust, RevocationOptions revocation);
  ~Validator();
  Validator(const Validator&) = delete;
  Validator& operator=(const Validator&) = delete;

  // `extra` are certificates that came with the leaf (from the card).
  ValidationResult validate(ByteView leaf_der, const std::vector<Bytes>& extra, Action action,
                            SystemTime now = std::chrono::system_clock::now());
  [[nodiscard]] std::size_t anchor_count() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// --- the registry ---

struct Validity {
  std::optional<std::string> from;  // YYYY-MM-DD
  std::optional<std::string> to;    // inclusive; nullopt: open-ended
  [[nodiscard]] bool covers(const std::string& date) const;
};

struct Right {
  std::string code;
  Validity valid;
  std::string name;  // from the imported code set, when known
};

struct Restriction {
  std::string target;         // code of 1.2.246.537.6.147.2008
  std::string object_system;  // "ATC" or "1.2.246.537.6.141.2008" (medicine class), "" for none
  std::string object_code;
  std::optional<std::string> scope;
  Validity valid;
  std::string target_name;  // from the imported code set, when known
};

struct Professional {
  std::string registration_number;
  std::string prescriber_id;
  std::string given_name;
  std::string family_name;
  std::string satu;
  std::string hetu;
  std::vector<Right> rights;
  std::vector<Restriction> restrictions;
  std::vector<std::string> specialties;
};

// One line of the extract; throws std::invalid_argument naming the field
// (or "not valid JSON").
Professional parse_professional(const Json& line);
Professional parse_professional(std::string_view line);

struct Provenance {
  std::string source;
  std::optional<SystemTime> imported_at;
  std::size_t records = 0;
  std::string sha256;
};

struct CodeEntry {
  std::string code;
  std::string name;
  Validity valid;
};

// One entry of a code-set export; throws std::invalid_argument naming the field.
CodeEntry parse_code_entry(const Json& entry);

// A SQLite store of the Valvira extract. Each import replaces the whole set
// in one transaction: readers (WAL) see the old set or the new one, never
// half. One object per thread; the file may be shared by processes.
class Registry {
 public:
  explicit Registry(const std::string& path, bool read_only = false);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  struct ImportResult {
    std::size_t records = 0;
    Provenance provenance;
    // Codes the extract uses that the imported code sets do not list (only
    // checked for a code set that has been imported).
    std::set<std::string> unknown_rights;
    std::set<std::string> unknown_targets;
  };
  // JSON Lines, one professional per line. A bad line, a repeated
  // registration number or an empty file rejects the whole file
  // (std::invalid_argument "line N: ..."), and the previous set stays.
  ImportResult import_professionals(std::istream& in, const std::string& source);
  ImportResult import_professionals(const std::string& file, const std::string& source);
  // A code set ("rights", "restriction_targets", "medicine_classes") from
  // CSV (header code,name,valid_from,valid_to) or JSON Lines. The file form
  // takes a name ending in .csv as CSV.
  std::size_t import_codes(const std::string& set, std::istream& in, bool csv);
  std::size_t import_codes(const std::string& set, const std::string& file);

  struct Lookup {
    std::optional<Professional> professional;
    Provenance provenance;  // of the same snapshot
    // Why the registry file, which is there, could not be read (a corrupt
    // file, no permission); empty when it was read or has not been made.
    std::string unreadable;
  };
  [[nodiscard]] Lookup by_registration_number(const std::string& number);
  [[nodiscard]] Lookup by_satu(const std::string& satu);
  [[nodiscard]] Provenance provenance();
  [[nodiscard]] std::optional<CodeEntry> code(const std::string& set, const std::string& code);
  [[nodiscard]] std::map<std::string, std::size_t> code_counts();  // per imported code set

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

inline const std::set<std::string> kCodeSets = {"rights", "restriction_targets", "medicine_classes"};

// --- the rules ---

struct PrescriptionRules {
  std::set<std::string> rights;               // any of these, valid today, may prescribe
  std::set<std::string> limited_rights;       // may prescribe only limited_atc
  std::vector<std::string> limited_atc;       // ATC prefixes for limited rights
  std::vector<std::string> self_prescribing;  // ATC prefixes never self-prescribed; "*": all
  // Card types (IdentityMapping::card_types values) that may sign
  // prescriptions; empty: any card.
  std::set<std::string> card_types;
  bool operator==(const PrescriptionRules&) const = default;
};

struct RegistryRules {
  std::chrono::hours max_age{24 * 7};
  bool deny_when_stale = false;  // false: warn
  bool operator==(const RegistryRules&) const = default;
};

struct Rules {
  PrescriptionRules prescription;
  RegistryRules registry;
  bool operator==(const Rules&) const = default;
};

struct Context {
  std::vector<std::string> atc_codes;
  std::vector<std::string> medicine_classes;  // codes of 1.2.246.537.6.141.2008
  std::optional<std::string> patient_id;      // hetu
  std::optional<std::string> workplace;
  bool supervised = false;
  // Who the document names as its author (a prescription's): must be the
  // signer. Set from the document, never from a client.
  std::optional<std::string> author_registration_number;  // root 1.2.246.537.26
  std::optional<std::string> author_prescriber_id;        // root 1.2.246.537.25
};

struct Decision {
  bool allowed = false;
  std::vector<Reason> reasons;   // why not (and nothing else when allowed)
  std::vector<Reason> warnings;  // allowed, but worth saying
  std::optional<Professional> professional;
  std::optional<Identity> identity;
  std::optional<ValidationResult> certificate;
  Provenance registry;
  bool registry_stale = false;
};

// The rules, as a pure function: everything they need comes in. `identity`
// and `certificate` are absent when the check names a registration number
// instead of a certificate. `today` is YYYY-MM-DD.
Decision evaluate(const Rules& rules, Action action, const std::optional<Identity>& identity,
                  const std::optional<ValidationResult>& certificate, const Registry::Lookup& lookup,
                  const Context& context, SystemTime now, const std::string& today);

// --- the service the daemon uses ---

struct Options {
  IdentityMapping identity;
  TrustOptions trust;
  RevocationOptions revocation;
  std::string registry_path;
  Rules rules;
};

class PolicyService {
 public:
  PolicyService(boost::asio::io_context& io, Options options);
  ~PolicyService();
  PolicyService(const PolicyService&) = delete;
  PolicyService& operator=(const PolicyService&) = delete;

  // A certificate's identity, validation for `action`, and registry record.
  // Checks may wait on a responder: the ticket's request being over drops a
  // check not yet started, and at most kMaxQueuedChecks wait (more: 1060),
  // a quarter of them one uid's (the ticket's owner).
  Task<Decision> identity(Bytes certificate_der, std::vector<Bytes> chain, Action action, Ticket ticket = {});
  // The whole decision for a certificate, or for a registration number alone
  // (no certificate checks then).
  Task<Decision> check(std::optional<Bytes> certificate_der, std::vector<Bytes> chain,
                       std::optional<std::string> registration_number, Action action, Context context,
                       Ticket ticket = {});
  static constexpr std::size_t kMaxQueuedChecks = 256;
  // These two throw 1060 when the registry file is there but cannot be
  // read: not "nothing imported", nor "no such professional".
  Task<Registry::Lookup> lookup(std::string registration_number, Ticket ticket = {});
  // The registry's provenance, read now (an import may have run since).
  Task<Provenance> status();
  [[nodiscard]] Provenance provenance() const;  // cached, refreshed after each check
  [[nodiscard]] bool stale(SystemTime now = std::chrono::system_clock::now()) const;
  void set_rules(Rules rules);  // SIGHUP
  // Lets queued work finish and waits up to `timeout` for the threads to end
  // (shutdown). False if one is still busy.
  bool stop(std::chrono::milliseconds timeout);

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace kortti::policy
