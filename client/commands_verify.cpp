// `kortti verify`: a signed XML document or a CMS signature, checked by korttid.

#include <iostream>
#include <memory>
#include <string_view>

#include "client/commands.hpp"
#include "common/encoding.hpp"

namespace kortti::cli {

namespace {

using client::Client;

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

}  // namespace

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

}  // namespace kortti::cli
