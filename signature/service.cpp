#include "common/worker.hpp"
#include "signature/signature.hpp"

namespace kortti::signature {

class DocumentService::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(boost::asio::io_context& io_context, XmlOptions xml_options)
      : io(io_context),
        options(std::move(xml_options)),
        worker("documents", Worker::Limits{kMaxQueuedJobs, options.max_queued_bytes}) {}

  // Jobs waiting at once, whatever their size.
  static constexpr std::size_t kMaxQueuedJobs = 256;

  template <class T, class Fn>
  void run(Fn fn, Completion<T> done, Ticket ticket) {
    run_then_post<T>(worker, io, shared_from_this(), std::move(fn), std::move(done), std::move(ticket));
  }

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

void DocumentService::prepare(std::string document, Profile profile, Bytes certificate_der,
                              Completion<std::shared_ptr<PreparedXml>> done, Ticket ticket) {
  impl_->run<std::shared_ptr<PreparedXml>>(
      [impl = impl_.get(), document = std::move(document), profile, der = std::move(certificate_der)] {
        return std::make_shared<PreparedXml>(prepare_xml(document, profile, der, impl->options));
      },
      std::move(done), std::move(ticket));
}

void DocumentService::finish(std::shared_ptr<PreparedXml> prepared, Bytes signature, Completion<std::string> done,
                             Ticket ticket) {
  impl_->run<std::string>(
      [prepared = std::move(prepared), signature = std::move(signature)] { return prepared->finish(signature); },
      std::move(done), std::move(ticket));
}

void DocumentService::prescription(std::string document, Completion<PrescriptionFacts> done, Ticket ticket) {
  impl_->run<PrescriptionFacts>(
      [impl = impl_.get(), document = std::move(document)] {
        return read_prescription(document, impl->options.limits);
      },
      std::move(done), std::move(ticket));
}

void DocumentService::prepare_cms(CmsInput input, Bytes certificate_der, std::vector<Bytes> chain,
                                  Completion<PreparedCms> done, Ticket ticket) {
  impl_->run<PreparedCms>([input = std::move(input), der = std::move(certificate_der),
                           chain = std::move(chain)] { return signature::prepare_cms(input, der, chain); },
                          std::move(done), std::move(ticket));
}

void DocumentService::finish_cms(PreparedCms prepared, Bytes signature, Completion<Bytes> done, Ticket ticket) {
  impl_->run<Bytes>(
      [prepared = std::move(prepared), signature = std::move(signature)] { return prepared.finish(signature); },
      std::move(done), std::move(ticket));
}

void DocumentService::verify_xml(std::string document, Completion<std::vector<XmlVerification>> done, Ticket ticket) {
  impl_->run<std::vector<XmlVerification>>(
      [impl = impl_.get(), document = std::move(document)] {
        return signature::verify_xml(document, impl->options.limits);
      },
      std::move(done), std::move(ticket));
}

void DocumentService::verify_cms(Bytes cms, std::optional<Bytes> content, std::optional<Bytes> content_digest,
                                 Completion<CmsVerification> done, Ticket ticket) {
  impl_->run<CmsVerification>(
      [cms = std::move(cms), content = std::move(content), content_digest = std::move(content_digest)] {
        return signature::verify_cms(cms, content, content_digest);
      },
      std::move(done), std::move(ticket));
}

}  // namespace kortti::signature
