// `kortti auth-token` and `verify-token`: Web eID login tokens made with the
// card's authentication key, and checked as a relying party would.

#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <stdexcept>

#include "client/commands.hpp"

namespace kortti::cli {

namespace {

using client::Client;

struct ChallengeOptions {
  std::string origin;
  std::string nonce;

  void add_to(CLI::App& cmd) {
    cmd.add_option("--origin", origin, "the relying party's origin, https://host[:port]")
        ->required()
        ->option_text("URL");
    cmd.add_option("--nonce", nonce, "the challenge nonce the relying party issued (base64, 44+ characters)")
        ->required()
        ->option_text("NONCE");
  }
  void apply(Json& params) const {
    params["origin"] = wstr(origin);
    params["challenge_nonce"] = wstr(nonce);
  }
};

struct AuthTokenOptions {
  std::string cert;
  std::string out;
  ChallengeOptions challenge;
  PinOptions pin;
};

int cmd_auth_token(Client& c, const Globals& g, const AuthTokenOptions& o) {
  Json params = {{"cert_id", wstr(o.cert)}};
  o.challenge.apply(params);
  const Json r = call_with_pin(c, "auth.token", std::move(params), o.pin, o.cert);
  if (g.json) return print_json(r), 0;
  const std::string token = to_std(r.at("token").dump());
  if (o.out.empty() || o.out == "-") {
    std::cout << token << "\n";
    return 0;
  }
  std::ofstream out(o.out, std::ios::trunc);
  if (!(out << token << "\n")) throw std::runtime_error("cannot write " + o.out);
  std::cerr << "Web eID token for " << o.challenge.origin << " (" << text(r.at("token"), "algorithm") << ") -> "
            << o.out << "\n";
  return 0;
}

struct VerifyTokenOptions {
  std::string in = "-";
  ChallengeOptions challenge;
};

Json read_token(const std::string& path) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    const Bytes bytes = read_file(path);
    text.assign(bytes.begin(), bytes.end());
  }
  Json token = Json::parse(text, nullptr, false);
  if (token.is_discarded() || !token.is_object())
    throw CLI::ValidationError("--in", "is not a Web eID token (a JSON object)");
  // The output of `kortti --json auth-token` holds the token under "token".
  if (token.contains("token") && token["token"].is_object()) return token["token"];
  return token;
}

int cmd_verify_token(Client& c, const Globals& g, const VerifyTokenOptions& o) {
  Json params = {{"token", read_token(o.in)}};
  o.challenge.apply(params);
  const Json r = c.call("auth.verify", params);
  const bool valid = r.value("valid", false);
  if (g.json) return print_json(r), valid ? 0 : kExitDenied;
  std::cout << (valid ? "VALID" : "NOT VALID") << "\n";
  field("subject", text(r, "subject"));
  field("why", text(r, "message"));
  if (r.contains("decision") && r["decision"].contains("certificate")) print_validation(r["decision"]["certificate"]);
  return valid ? 0 : kExitDenied;
}

}  // namespace

Runner define_auth_token(CLI::App& cmd) {
  cmd.footer(
      "\nSigns a relying party's login challenge with the card's authentication key\n"
      "the Web eID way (format web-eid:1.0): the card signs hash(origin) ||\n"
      "hash(nonce). The certificate passes korttid's chain, revocation and key\n"
      "usage checks first. Uses this user's PIN1 session where there is one;\n"
      "otherwise asks for the PIN. Prints the token (JSON) for the relying party.");
  auto o = std::make_shared<AuthTokenOptions>();
  cmd.add_option("--cert", o->cert, "the authentication certificate (kortti certs)")
      ->required()
      ->option_text("CERT_ID");
  o->challenge.add_to(cmd);
  cmd.add_option("--out", o->out, "write the token here instead of standard output")->option_text("FILE");
  o->pin.add_to(&cmd);
  return {[o](Client& c, const Globals& g) { return cmd_auth_token(c, g, *o); }, {}};
}

Runner define_verify_token(CLI::App& cmd) {
  cmd.footer(
      "\nChecks a Web eID token as a relying party would: the format, the algorithm\n"
      "against the certificate's key, the signature over this origin and nonce, and\n"
      "the certificate through korttid's trust anchors, revocation and key usage.\n"
      "Exit 0 when it holds, 3 when not.");
  auto o = std::make_shared<VerifyTokenOptions>();
  cmd.add_option("--in", o->in, "the token (JSON); - for standard input (default)")->option_text("FILE");
  o->challenge.add_to(cmd);
  return {[o](Client& c, const Globals& g) { return cmd_verify_token(c, g, *o); }, {}};
}

}  // namespace kortti::cli
