// `kortti sign` and `prescribe`: the commands that spend the PIN on a signature.

#include <openssl/pem.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "client/commands.hpp"
#include "client/pin_entry.hpp"
#include "common/digest.hpp"
#include "common/encoding.hpp"
#include "common/openssl.hpp"

namespace kortti::cli {

namespace {

using client::Client;
using client::RpcError;

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
  if (!alg) throw std::runtime_error("--digest must be sha256, sha384 or sha512");
  // The file is hashed here; only its digest goes to the daemon.
  const Bytes hash = digest(*alg, read_file(o.in));
  Json params = {
      {"cert_id", wstr(o.cert)}, {"digest_algorithm", wstr(o.digest)}, {"digest", wstr(base64_encode(hash))}};
  if (!o.scheme.empty()) params["scheme"] = wstr(o.scheme);
  const Json r = call_with_pin(c, "sign.digest", std::move(params), o.pin, o.cert);
  const auto signature = base64_decode(required_text(r, "signature"));
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
  const std::string signed_doc = required_text(r, "document");
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

}  // namespace

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

}  // namespace kortti::cli
