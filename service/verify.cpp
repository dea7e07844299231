// verify.xml and verify.cms: the mathematics on the documents thread, then
// every signer's certificate through the policy's chain and revocation checks
// (for sign_document, at the time of the call).

#include "service/service.hpp"

namespace kortti::service {

Task<std::vector<SignerCheck>> Service::check_signers(const Caller& caller, std::vector<SignerCheck> signers,
                                                      const std::vector<std::vector<Bytes>>& chains) {
  for (std::size_t i = 0; i < signers.size(); ++i) {
    if (signers[i].certificate.empty()) continue;
    signers[i].decision =
        co_await policy().identity(signers[i].certificate, chains[i], policy::Action::sign_document, caller.ticket());
  }
  co_return signers;
}

Task<XmlReport> Service::verify_xml(Caller caller, std::string document) {
  const std::size_t bytes = document.size();
  XmlReport report;
  report.signatures = co_await documents().verify_xml(std::move(document), caller.ticket(bytes));
  std::vector<SignerCheck> signers;
  std::vector<std::vector<Bytes>> chains;
  for (const auto& v : report.signatures) {
    signers.push_back({v.certificate, std::nullopt});
    chains.push_back(v.chain);
  }
  report.signers = co_await check_signers(caller, std::move(signers), chains);
  co_return report;
}

Task<CmsReport> Service::verify_cms(Caller caller, Bytes cms, std::optional<Bytes> content,
                                    std::optional<Bytes> content_digest) {
  if (content && content_digest) throw Error(Errc::invalid_params, "give the content or its digest, not both");
  const std::size_t bytes = cms.size() + (content ? content->size() : 0);
  check_document_size(bytes, "signature with its content");
  CmsReport report;
  report.cms = co_await documents().verify_cms(std::move(cms), std::move(content), std::move(content_digest),
                                               caller.ticket(bytes));
  std::vector<SignerCheck> signers;
  std::vector<std::vector<Bytes>> chains;
  for (const auto& s : report.cms.signers) {
    signers.push_back({s.certificate, std::nullopt});
    chains.push_back(s.chain);
  }
  report.signers = co_await check_signers(caller, std::move(signers), chains);
  co_return report;
}

}  // namespace kortti::service
