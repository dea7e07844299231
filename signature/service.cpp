#include "common/task.hpp"
#include "signature/signature.hpp"

namespace kortti::signature {

namespace {

// The last step of a document the card has signed: run, never refused for a
// full queue nor dropped, or a signature made would be lost. Its document's
// bytes are already counted (service/held_documents.hpp), and what waits for
// this worker is bounded by the requests that may be in flight.
template <class Fn>
Task<std::invoke_result_t<Fn&>> always_on(Worker& worker, Fn fn) {
  using T = std::invoke_result_t<Fn&>;
  return completion<T>([&worker, fn = std::move(fn)](Completion<T> done) mutable {
    worker.post([fn = std::move(fn), done = std::move(done)]() mutable { done(capture(fn)); });
  });
}

}  // namespace

class DocumentService::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(boost::asio::io_context& io_context, XmlOptions xml_options)
      : io(io_context),
        options(std::move(xml_options)),
        worker("documents", Worker::Limits{kMaxQueuedJobs, options.max_queued_bytes, kMaxQueuedJobs / 4,
                                           options.max_queued_bytes / 2}) {}

  // Jobs waiting at once, whatever their size; a quarter of them, and half
  // the bytes, one uid's.
  static constexpr std::size_t kMaxQueuedJobs = 256;

  boost::asio::io_context& io;
  XmlOptions options;
  Worker worker;
};

DocumentService::DocumentService(boost::asio::io_context& io, XmlOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {
  initialise();
}

DocumentService::~DocumentService() = default;

const XmlOptions& DocumentService::options() const { return impl_->options; }

bool DocumentService::stop(std::chrono::milliseconds timeout) { return impl_->worker.stop_and_wait(timeout); }

Task<std::shared_ptr<PreparedXml>> DocumentService::prepare(std::string document, Profile profile,
                                                            Bytes certificate_der, Ticket ticket) {
  return on(impl_->worker, std::move(ticket),
            [impl = impl_, document = std::move(document), profile, der = std::move(certificate_der)] {
              return std::make_shared<PreparedXml>(prepare_xml(document, profile, der, impl->options));
            });
}

Task<PreparedPrescription> DocumentService::prepare_prescription(std::string document, Bytes certificate_der,
                                                                 Ticket ticket) {
  return on(impl_->worker, std::move(ticket),
            [impl = impl_, document = std::move(document), der = std::move(certificate_der)] {
              return signature::prepare_prescription(document, der, impl->options);
            });
}

Task<std::string> DocumentService::finish(std::shared_ptr<PreparedXml> prepared, Bytes signature) {
  return always_on(impl_->worker, [prepared = std::move(prepared), signature = std::move(signature)] {
    return prepared->finish(signature);
  });
}

Task<PreparedCms> DocumentService::prepare_cms(CmsInput input, Bytes certificate_der, std::vector<Bytes> chain,
                                               Ticket ticket) {
  return on(impl_->worker, std::move(ticket),
            [input = std::move(input), der = std::move(certificate_der), chain = std::move(chain)] {
              return signature::prepare_cms(input, der, chain);
            });
}

Task<Bytes> DocumentService::finish_cms(PreparedCms prepared, Bytes signature) {
  return always_on(impl_->worker, [prepared = std::move(prepared), signature = std::move(signature)] {
    return prepared.finish(signature);
  });
}

Task<std::vector<XmlVerification>> DocumentService::verify_xml(std::string document, Ticket ticket) {
  return on(impl_->worker, std::move(ticket), [impl = impl_, document = std::move(document)] {
    return signature::verify_xml(document, impl->options.limits);
  });
}

Task<CmsVerification> DocumentService::verify_cms(Bytes cms, std::optional<Bytes> content,
                                                  std::optional<Bytes> content_digest, Ticket ticket) {
  return on(impl_->worker, std::move(ticket),
            [cms = std::move(cms), content = std::move(content), content_digest = std::move(content_digest)] {
              return signature::verify_cms(cms, content, content_digest);
            });
}

Task<WebEidCheck> DocumentService::verify_web_eid(WebEidToken token, std::string origin, std::string nonce,
                                                  Ticket ticket) {
  return on(impl_->worker, std::move(ticket),
            [token = std::move(token), origin = std::move(origin), nonce = std::move(nonce)] {
              return signature::verify_web_eid_token(token, origin, nonce);
            });
}

}  // namespace kortti::signature
