#include "tests/support/support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/rand.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/encoding.hpp"

namespace kortti::test {

fs::path source_dir() { return KORTTI_SOURCE_DIR; }
fs::path binary_dir() { return KORTTI_BINARY_DIR; }
fs::path programs_dir() {
  const char* other = std::getenv("KORTTI_TEST_PROGRAMS");
  return other != nullptr && *other != '\0' ? fs::path(other) : binary_dir();
}
fs::path korttid_binary() { return programs_dir() / "daemon" / "korttid"; }
fs::path kortti_binary() { return programs_dir() / "client" / "kortti"; }
fs::path webeid_binary() { return programs_dir() / "webeid" / "kortti-webeid"; }
std::string SoftHsm::shim() { return (programs_dir() / "tests/p11_shim/p11-shim.so").string(); }

fs::path pki_dir() {
  const fs::path dir = binary_dir() / "tests" / "pki";
  if (fs::exists(dir / "people.tsv")) return dir;
  // Outside ctest (which makes it once as a fixture): make it here, once.
  fs::create_directories(binary_dir() / "tests");
  const int lock = ::open((binary_dir() / "tests" / "pki.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ::flock(lock, LOCK_EX);
  if (!fs::exists(dir / "people.tsv")) {
    auto r = run({(source_dir() / "tests/fixtures/make-pki.sh").string(), dir.string()});
    if (r.status != 0) throw std::runtime_error("make-pki.sh failed: " + r.err);
  }
  ::flock(lock, LOCK_UN);
  ::close(lock);
  return dir;
}

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "kortti-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  if (std::getenv("KORTTI_KEEP_TMP") != nullptr) return;
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

void write_file(const fs::path& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return done();
}

std::string read_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::size_t occurrences(std::string_view text, std::string_view needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::string unsigned_document(std::size_t bytes) {
  std::string document = "<a>";
  while (document.size() < bytes) document += "<b c=\"d\">text text text</b>";
  return document + "</a>";
}

std::string verify_burst(const std::string& document, int n) {
  std::string burst;
  for (int i = 1; i <= n; ++i)
    burst += R"({"jsonrpc":"2.0","id":)" + std::to_string(i) +
             R"(,"method":"verify.xml","attachment":{"name":"document","bytes":)" + std::to_string(document.size()) +
             "}}\n" + document;
  return burst;
}

Bytes read_bytes(const fs::path& path) {
  const std::string s = read_file(path);
  return Bytes(s.begin(), s.end());
}

void write_bytes(const fs::path& path, ByteView data) {
  write_file(path, std::string(reinterpret_cast<const char*>(data.data()), data.size()));
}

SoftHsm::SoftHsm(const fs::path& dir) : dir_(dir) {}

namespace {

// Each kind of token is made once per test PKI (make-pki.sh removes the
// models with the keys they hold) and copied into each test's directory:
// pkcs11-tool costs about a second a token, and most tests want the same
// two. A copy is a token of its own (its PIN counter, its objects) with the
// serial number of its model.
fs::path token_model(const std::string& label, const std::vector<std::string>& items) {
  const fs::path models = pki_dir() / "token-models";
  std::string name = label;
  for (const auto& item : items) name += "+" + item;
  // A label may hold what a path should not (a line break would break
  // softhsm2.conf, which names the folder).
  std::replace_if(
      name.begin(), name.end(), [](char c) { return c == '/' || static_cast<unsigned char>(c) < 0x20; }, '_');
  const fs::path model = models / name;
  if (fs::exists(model / "made")) return model;
  fs::create_directories(models);
  const int lock = ::open((models / ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ::flock(lock, LOCK_EX);
  if (!fs::exists(model / "made")) {
    const fs::path draft = models / (name + ".draft");
    fs::remove_all(draft);
    std::vector<std::string> argv = {(source_dir() / "tests/fixtures/softhsm-token.sh").string(), draft.string(),
                                     label};
    argv.insert(argv.end(), items.begin(), items.end());
    auto r = run(argv, {{"TOKEN_PIN", kPin}, {"TOKEN_SO_PIN", kSoPin}, {"KORTTI_PKI", pki_dir().string()}});
    if (r.status != 0) {
      ::close(lock);
      throw std::runtime_error("softhsm-token.sh failed: " + r.err + r.out);
    }
    write_file(draft / "made", "");
    fs::rename(draft, model);
  }
  ::close(lock);
  return model;
}

}  // namespace

void SoftHsm::add_token(const std::string& label, const std::vector<std::string>& items) {
  const fs::path model = token_model(label, items);
  fs::create_directories(dir_ / "tokens");
  if (!fs::exists(conf()))
    write_file(conf(), "directories.tokendir = " + fs::absolute(dir_ / "tokens").string() +
                           "\nobjectstore.backend = file\nlog.level = ERROR\n");
  for (const auto& token : fs::directory_iterator(model / "tokens"))
    fs::copy(token.path(), dir_ / "tokens" / token.path().filename(), fs::copy_options::recursive);
}

Bytes random_bytes(std::size_t n) {
  Bytes b(n);
  RAND_bytes(b.data(), static_cast<int>(n));
  return b;
}

std::string str(const Json& value) { return to_std(value.get_ref<const WipingString&>()); }

Bytes b64(const Json& value) {
  auto bytes = base64_decode(str(value));
  if (!bytes) throw std::runtime_error("not base64: " + str(value));
  return *bytes;
}

SilentNameServer::SilentNameServer() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(53);
  a.sin_addr.s_addr = htonl(0x7F000002);
  // One name server at a time on the machine: a test of another binary (the
  // revocation checks' and the tunnels' both have one) may hold the port for
  // the few seconds its lookup takes to time out.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    bound_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (bound_ || errno != EADDRINUSE || std::chrono::steady_clock::now() > until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  write_file(etc_ / "resolv.conf", "nameserver 127.0.0.2\noptions timeout:30 attempts:1\n");
}

SilentNameServer::~SilentNameServer() {
  if (fd_ >= 0) ::close(fd_);
}

int SilentNameServer::questions() const {
  int n = 0;
  char buf[512];
  while (::recv(fd_, buf, sizeof buf, MSG_DONTWAIT) > 0) ++n;
  return n;
}

std::vector<std::string> SilentNameServer::wrapper() const {
  return {"unshare",
          "--mount",
          "--propagation",
          "private",
          "sh",
          "-c",
          "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"",
          (etc_ / "resolv.conf").string()};
}

}  // namespace kortti::test
