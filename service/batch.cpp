// sign.batch: several signatures on one card with one PIN entry. Each item
// is made ready on its own (a prescription passes the policy on its own);
// the token then signs the prepared digests in order with the one
// credential, which lives only as long as the batch, within a bounded count
// and time. A card pulled midway fails the rest with card_removed; what was
// signed before stays signed, audited and returned.

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <utility>

#include "service/prepared.hpp"

namespace kortti::service {

namespace {

// What the token reports, item by item, as it signs. It may report after the
// batch is over (a card pulled mid-command): it is audited all the same.
// Touched only on the io thread.
struct Progress {
  std::vector<std::size_t> order;  // signing position -> item
  std::vector<AuditRecord> audits;
  std::vector<std::optional<Result<pkcs11::SignResult>>> signed_items;
  std::size_t audits_pending = 0;  // lines asked for and not yet settled
  Completion<Unit> all_audited;    // the batch waiting for them
};

// Resumes the batch once every line it asked for is settled. Not a
// coroutine: the wait starts when awaited.
Task<Unit> all_audited(std::shared_ptr<Progress> progress) {
  return completion<Unit>([progress](Completion<Unit> done) {
    if (progress->audits_pending == 0) return done(Unit{});
    progress->all_audited = std::move(done);
  });
}

// What the token is asked to sign: the items that were made ready, in
// order, each with its audit line waiting in `progress`.
std::vector<pkcs11::SignRequest> card_requests(std::vector<std::optional<Service::Prepared>>& prepared,
                                               const std::string& cert_id, const Caller& caller, Progress& progress) {
  std::vector<pkcs11::SignRequest> requests;
  for (std::size_t i = 0; i < prepared.size(); ++i) {
    if (!prepared[i]) continue;
    prepared[i]->request.cert_id = cert_id;
    prepared[i]->request.uid = caller.uid;
    requests.push_back(prepared[i]->request);
    progress.order.push_back(i);
    progress.audits.push_back(audit_record(caller, prepared[i]->method, prepared[i]->request));
  }
  progress.signed_items.resize(requests.size());
  return requests;
}

// The line of every item the token has reported is written before the
// answer leaves, as for one signature; the card goes on signing meanwhile.
// An item whose line could not be written is refused. An item the token
// reports only after the batch has ended (the card was pulled while it was
// on the card) is audited then, as not delivered.
std::function<void(std::size_t, Result<pkcs11::SignResult>)> audit_as_reported(std::shared_ptr<Progress> progress,
                                                                               boost::asio::any_io_executor io,
                                                                               AuditSink* sink) {
  return [progress, io, sink](std::size_t j, Result<pkcs11::SignResult> r) {
    AuditRecord line = answered(progress->audits[j], r);
    ++progress->audits_pending;
    auto settle = [progress, j, r = std::move(r)](bool ok) mutable {
      if (!ok && r.ok()) r = audit_unavailable();
      progress->signed_items[j] = std::move(r);
      if (--progress->audits_pending == 0 && progress->all_audited) std::exchange(progress->all_audited, {})(Unit{});
    };
    if (sink == nullptr) return settle(true);
    sink->record(std::move(line), [io, settle = std::move(settle)](bool ok) mutable {
      boost::asio::post(io, [settle = std::move(settle), ok]() mutable { settle(ok); });
    });
  };
}

}  // namespace

// Each item made ready on its own; one that cannot be has its error in
// `results` and no place in the batch.
Task<std::vector<std::optional<Service::Prepared>>> Service::prepare_items(const Caller& caller,
                                                                           const pkcs11::CertificateInfo& cert,
                                                                           std::vector<Result<SignItem>> items,
                                                                           std::vector<Result<Signed>>& results) {
  std::vector<std::optional<Prepared>> prepared(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    results.emplace_back(Error(Errc::internal_error, "the item was never signed"));
    if (!items[i].ok()) {
      results[i] = items[i].error();
      continue;
    }
    SignItem item = std::move(items[i]).value();
    item.method = "sign.batch " + item.method;
    Result<Prepared> p = co_await attempt(prepare(caller, cert, std::move(item)));
    if (!p.ok()) {
      results[i] = p.error();
      continue;
    }
    prepared[i] = std::move(p).value();
  }
  co_return prepared;
}

Task<std::vector<Result<Signed>>> Service::sign_batch(Caller caller, std::string cert_id,
                                                      std::vector<Result<SignItem>> items,
                                                      pkcs11::Credentials credentials) {
  co_await services_.tokens->check_may_sign(cert_id, caller.uid, credentials, caller.stop);
  // The batch stops at its time limit as when the caller goes away.
  auto stop = std::make_shared<std::stop_source>();
  std::stop_callback forward(caller.stop, [stop] { stop->request_stop(); });
  boost::asio::steady_timer limit(co_await boost::asio::this_coro::executor, options_.batch_max_time);
  limit.async_wait([stop](const boost::system::error_code& ec) {
    if (!ec) stop->request_stop();
  });

  const pkcs11::CertificateInfo cert = co_await services_.tokens->certificate(cert_id);
  if (credentials.pin || credentials.prompt || credentials.pinpad)
    check_pin_source(caller, credentials, is_signature_key(cert));
  std::vector<Result<Signed>> results;
  std::vector<std::optional<Prepared>> prepared = co_await prepare_items(caller, cert, std::move(items), results);

  auto progress = std::make_shared<Progress>();
  std::vector<pkcs11::SignRequest> requests = card_requests(prepared, cert_id, caller, *progress);
  if (!requests.empty()) {
    const auto io = co_await boost::asio::this_coro::executor;
    auto each = audit_as_reported(progress, io, services_.audit);
    // One dialog for the batch, and no second: a wrong PIN has already
    // failed every item, each with its audit line.
    Result<Unit> all = Unit{};
    pinentry::Dialog dialog;
    if (credentials.prompt) dialog = signature_dialog(caller, cert, "sign.batch", requests.front(), requests.size());
    CardStep sign_all = [&](pkcs11::Credentials c) -> Task<Unit> {
      all = co_await attempt(services_.tokens->sign_many(std::move(requests), std::move(c), stop->get_token(), each));
      co_return Unit{};
    };
    // The dialog ends with the batch: at its time limit too, not only when
    // the caller goes.
    Caller asking = caller;
    asking.stop = stop->get_token();
    co_await with_pin(asking, cert.token_id, std::move(dialog), std::move(credentials), 1, sign_all);
    co_await all_audited(progress);
    for (std::size_t j = 0; j < progress->order.size(); ++j) {
      const std::size_t i = progress->order[j];
      auto& r = progress->signed_items[j];
      if (!r) {
        // Refused as a whole (no such card, keys of two cards): every item says so.
        if (!all.ok()) results[i] = all.error();
        continue;
      }
      if (!r->ok()) {
        results[i] = r->error();
        continue;
      }
      results[i] = co_await attempt(finish(std::move(*prepared[i]), std::move(*r).value()));
    }
  }
  limit.cancel();
  co_return results;
}

}  // namespace kortti::service
