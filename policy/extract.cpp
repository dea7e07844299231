#include "policy/extract.hpp"

#include "common/encoding.hpp"

namespace kortti::policy {

namespace {

constexpr std::size_t kBatch = 512;
constexpr std::size_t kBatchesAhead = 8;

}  // namespace

bool blank_line(const std::string& s) { return s.find_first_not_of(" \t") == std::string::npos; }

HashingReader::HashingReader(std::istream& in) : in_(in), md_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(md_.get(), EVP_sha256(), nullptr);
}

bool HashingReader::line(std::string& out) {
  // The buffer has room for one byte past the limit and getline's
  // terminator: a longer line fills it and stops there (failbit, no eofbit).
  in_.getline(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
  const auto n = static_cast<std::size_t>(in_.gcount());
  const auto refused = [this](const std::string& why) {
    return std::invalid_argument("line " + std::to_string(number_ + 1) + ": " + why);
  };
  if (in_.bad() || (in_.fail() && !in_.eof() && n == 0)) throw refused("the file cannot be read further");
  if (n == 0 && in_.eof()) {
    out.clear();
    return false;
  }
  const bool ended = !in_.eof();  // its \n was read (and counted)
  const std::size_t length = ended ? n - 1 : n;
  const bool cr = length > 0 && buffer_[length - 1] == '\r';
  // A full buffer with more of the line behind it sets failbit; a line of
  // kMaxLineBytes + 1 that ends right there does not.
  if (in_.fail() || length - (cr ? 1 : 0) > kMaxLineBytes)
    throw refused("longer than " + std::to_string(kMaxLineBytes) + " bytes");
  ++number_;
  out.assign(buffer_.data(), length);
  EVP_DigestUpdate(md_.get(), out.data(), out.size());
  if (ended) EVP_DigestUpdate(md_.get(), "\n", 1);
  if (!out.empty() && out.back() == '\r') out.pop_back();
  return true;
}

std::string HashingReader::sha256() {
  unsigned char digest[32];
  unsigned int n = 0;
  EVP_DigestFinal_ex(md_.get(), digest, &n);
  return hex_encode(ByteView(digest, n));
}

ExtractReader::ExtractReader(std::istream& in) : reader_(in) {}

ExtractReader::~ExtractReader() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

bool ExtractReader::fill(std::vector<ParsedLine>& batch, std::string& error) {
  std::string text;
  while (batch.size() < kBatch) {
    try {
      if (!reader_.line(text)) return false;
    } catch (const std::invalid_argument& e) {
      error = e.what();
      return false;
    }
    if (blank_line(text)) continue;
    ParsedLine parsed;
    parsed.number = reader_.number();
    try {
      parsed.professional = parse_professional(std::string_view(text));
    } catch (const std::invalid_argument& e) {
      error = "line " + std::to_string(parsed.number) + ": " + e.what();
      return false;
    }
    parsed.text = std::move(text);
    text.clear();
    batch.push_back(std::move(parsed));
  }
  return true;
}

void ExtractReader::finish(std::vector<ParsedLine> batch, const std::string& error) {
  if (!batch.empty()) ready_.push_back(std::move(batch));
  if (error.empty()) sha256_ = reader_.sha256();
  error_ = error;
  finished_ = true;
}

void ExtractReader::run() {
  for (;;) {
    std::vector<ParsedLine> batch;
    std::string error;
    const bool more = fill(batch, error);
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return stopping_ || ready_.size() < kBatchesAhead; });
    if (stopping_) return;
    if (!more) {
      finish(std::move(batch), error);
    } else {
      ready_.push_back(std::move(batch));
    }
    lock.unlock();
    changed_.notify_all();
    if (!more) return;
  }
}

std::vector<ParsedLine> ExtractReader::next() {
  if (!started_) {
    // The first batch here: a file of no more (most code-set sized
    // extracts, a test's) needs no thread. A longer one is parsed on a
    // thread of its own from its second batch, ahead of the inserts.
    started_ = true;
    std::vector<ParsedLine> first;
    std::string error;
    if (!fill(first, error)) {
      finish(std::move(first), error);
    } else {
      ready_.push_back(std::move(first));
      thread_ = std::thread([this] { run(); });
    }
  }
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty() || finished_; });
  if (ready_.empty()) {
    if (!error_.empty()) throw std::invalid_argument(error_);
    return {};
  }
  std::vector<ParsedLine> batch = std::move(ready_.front());
  ready_.pop_front();
  lock.unlock();
  changed_.notify_all();
  return batch;
}

}  // namespace kortti::policy
