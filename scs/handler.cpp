#include "scs/handler.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include "common/encoding.hpp"
#include "common/error.hpp"

namespace kortti::scs {

namespace asio = boost::asio;
namespace http = boost::beast::http;

namespace {

Reason reason_for(Errc code) {
  switch (code) {
    case Errc::pin_entry_cancelled:
      return Reason::cancelled;
    case Errc::pin_required:
    case Errc::pin_incorrect:
    case Errc::pin_locked:
      return Reason::pin;
    case Errc::policy_denied:
    case Errc::certificate_invalid:
      return Reason::certificate_invalid;
    case Errc::not_found:
    case Errc::token_not_found:
    case Errc::reader_not_found:
      return Reason::no_certificate;
    case Errc::invalid_params:
    case Errc::document_invalid:
    case Errc::parse_error:
    case Errc::invalid_request:
      return Reason::bad_request;
    case Errc::internal_error:
    case Errc::method_not_found:
      return Reason::internal;
    // A card or module error, a dialog program that cannot start, a full
    // queue for the card, korttid stopping: the page's 109 is only SCS's
    // own limit of signatures waiting for the user.
    case Errc::service_unavailable:
    case Errc::card_removed:
    case Errc::token_busy:
    case Errc::permission_denied:
    case Errc::unsupported:
      return Reason::card_error;
  }
  return Reason::internal;
}

// What the card signs, as the service core takes it.
service::SignItem sign_item(const SignRequest& request) {
  service::SignItem item;
  item.detail = "scs";
  item.validate_for = request.selector.purpose == pkcs11::Purpose::authentication ? policy::Action::authenticate
                                                                                  : policy::Action::sign_document;
  if (request.type == SignatureType::signature) {
    service::DigestToSign digest_item;
    digest_item.algorithm = request.hash;
    if (request.content_type == ContentType::data) {
      item.method = "sign.data";
      digest_item.digest = digest(request.hash, request.content);
    } else {
      item.method = "sign.digest";
      digest_item.digest = request.content;
    }
    item.what = std::move(digest_item);
    return item;
  }
  service::CmsToSign cms;
  cms.digest_algorithm = request.hash;
  if (request.content_type == ContentType::data) {
    cms.input.content = request.content;  // cms over data: the content inside
  } else {
    cms.input.content_digest = request.content;  // cms over a digest, cms-pades: detached
    cms.input.detached = true;
  }
  item.method = "sign.cms";
  item.what = std::move(cms);
  return item;
}

// The signature through the service core, as SCS answers it.
Task<Json> perform(service::Service& service, service::Caller caller, SignRequest request) {
  const pkcs11::TokenService::Listing listed = co_await service.services().tokens->all_certificates();
  const std::optional<pkcs11::CertificateInfo> cert = select_certificate(listed.certificates, request.selector);
  if (!cert)
    throw listed.none_fit(std::string("a ") +
                          (request.selector.purpose == pkcs11::Purpose::signature
                               ? "signature (nonrepudiation)"
                               : "authentication (digitalsignature)") +
                          " certificate the selector accepts");
  service::SignItem item = sign_item(request);
  pkcs11::Credentials credentials;
  credentials.prompt = true;  // every signature asks the user, naming the page
  const service::Signed s =
      co_await service.sign(std::move(caller), cert->cert_id, std::move(item), std::move(credentials));
  Json chain = Json::array();
  chain.push_back(wstr(base64_encode(s.card.certificate.der)));
  for (const Bytes& issuer : cert->chain) chain.push_back(wstr(base64_encode(issuer)));
  const Bytes& value = s.cms ? *s.cms : s.card.signature;
  co_return Json{{"version", "1.1"},
                 {"status", "ok"},
                 {"reasonCode", 0},
                 {"reasonText", ""},
                 {"signatureType", name_of(request.type)},
                 {"signatureAlgorithm", wstr(signature_algorithm(request.hash, cert->key_type, s.card.scheme))},
                 {"signature", wstr(base64_encode(value))},
                 {"chain", std::move(chain)}};
}

// Where a signature's answer waits: the request's deadline, or the answer.
struct Outcome {
  explicit Outcome(const asio::any_io_executor& executor) : done(executor) {}
  std::optional<Json> body;
  bool expired = false;  // the answer went without it
  asio::steady_timer done;
};

// `pending` counts the signatures running; this one leaves it when it ends,
// not when its request's deadline passed.
Task<> run(service::Service& service, service::Caller caller, SignRequest request, std::shared_ptr<Outcome> outcome,
           std::shared_ptr<std::size_t> pending) {
  try {
    outcome->body = co_await perform(service, std::move(caller), std::move(request));
  } catch (const Error& e) {
    // Past the defences every failure is answered 200 with status "failed",
    // as a page written for DigiSign reads it.
    outcome->body = failed(reason_for(e.code()), e.what());
  } catch (const std::exception& e) {
    const Error e2 = internal_error("an SCS signature", e.what());
    outcome->body = failed(Reason::internal, e2.what());
  }
  --*pending;
  outcome->done.cancel();
}

}  // namespace

Handler::Handler(service::Service& service, const Options& options, uid_t owner)
    : service_(service),
      options_(options),
      screen_(options),
      owner_(owner),
      rate_(options.signatures_per_minute),
      log_budget_(options.log_lines_per_second_per_uid) {}

bool Handler::probe(const Request& request) const {
  if (!screen_.probe(request)) return false;
  log_line(request,
           "no answer (another site's request, by its Sec-Fetch-Site; its origin is not in [scs] allowed_origins)");
  return true;
}

Response Handler::too_large(const Parser& parser) const {
  // A refusal of its headers first; an answer they would get (a /version,
  // a preflight) is not given to a request over the limit.
  std::optional<Response> refused = screen_.headers(parser, *pending_);
  Response response = refused && refused->result_int() >= 400 ? std::move(*refused) : screen_.too_large(parser.get());
  log(parser.get(), response, std::chrono::steady_clock::now());
  return response;
}

void Handler::log(const Request& request, const Response& response,
                  std::chrono::steady_clock::time_point started) const {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  log_line(request, std::to_string(response.result_int()) + " (" + std::to_string(ms) + " ms)");
}

void Handler::log_line(const Request& request, const std::string& outcome) const {
  // Past the budget a line is counted, not written; a signature's is in the
  // audit trail all the same.
  if (!log_budget_.allow(owner_)) return;
  const auto origin = request.find(http::field::origin);
  spdlog::info("scs: {} {} origin={} -> {}", printable(std::string(request.method_string()), 16),
               printable(target_path(request), 64),
               origin != request.end() ? printable(std::string(origin->value()), 100) : "(none)", outcome);
}

std::optional<Response> Handler::screen(const Parser& parser) const {
  std::optional<Response> response = screen_.headers(parser, *pending_);
  if (response) log(parser.get(), *response, std::chrono::steady_clock::now());
  return response;
}

Task<Response> Handler::sign(Request request, std::stop_token gone) {
  const auto started = std::chrono::steady_clock::now();
  const std::string origin(request[http::field::origin]);
  Response response = co_await sign_request(request, origin, std::move(gone));
  log(request, response, started);
  co_return response;
}

Task<Response> Handler::sign_request(const Request& request, const std::string& origin, std::stop_token gone) {
  auto read = screen_.body(request);
  if (auto* refused = std::get_if<Response>(&read)) co_return std::move(*refused);
  SignRequest sign = std::move(std::get<SignRequest>(read));
  // Busy first: a page that retries on 503, as told, does not spend its
  // signatures a minute on the tries. (Checked again here: others may have
  // started while this body was read.)
  if (*pending_ >= options_.max_pending_signatures) co_return screen_.busy(request);
  if (!rate_.allow(origin, std::chrono::steady_clock::now()))
    co_return screen_.refusal(request, {429, Reason::rate_limited,
                                        "more than " + std::to_string(options_.signatures_per_minute) +
                                            " signatures a minute from this origin ([scs] signatures_per_minute)"});

  service::Caller caller;
  caller.uid = owner_;
  caller.gid = ::getgid();
  caller.client = "scs";
  caller.origin = origin;
  auto stop = std::make_shared<std::stop_source>();
  caller.stop = stop->get_token();
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  auto outcome = std::make_shared<Outcome>(executor);
  outcome->done.expires_after(options_.request_timeout);
  caller.listening = [outcome] { return !outcome->expired; };
  // Runs at once if the page is gone already: the wait below then ends at once.
  const std::stop_callback on_gone(gone,
                                   [outcome] { outcome->done.expires_at(asio::steady_timer::time_point::min()); });
  ++*pending_;
  running_.insert(stop);
  auto work = run(service_, std::move(caller), std::move(sign), outcome, pending_);
  asio::co_spawn(executor, std::move(work), asio::detached);
  boost::system::error_code ec;
  co_await outcome->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  running_.erase(stop);
  if (!outcome->body || gone.stop_requested()) {
    outcome->expired = true;
    stop->request_stop();
    if (gone.stop_requested()) {
      spdlog::info("scs: the page of {} closed its connection; its signature is abandoned", printable(origin, 100));
      co_return screen_.answer(request, 200, failed(Reason::cancelled, "the page closed its connection"));
    }
    co_return screen_.answer(request, 200,
                             failed(Reason::card_error, "the signature did not finish within " +
                                                            std::to_string(options_.request_timeout.count()) + " s"));
  }
  co_return screen_.answer(request, 200, *outcome->body);
}

void Handler::cancel_all() {
  for (const auto& stop : running_) stop->request_stop();
  log_budget_.flush();  // no later line would bring the count
}

}  // namespace kortti::scs
