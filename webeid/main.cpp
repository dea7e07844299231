// kortti-webeid: the native messaging host of the Web eID browser extension.
// The browser starts it for one command: it announces its version, reads the
// command, has korttid carry it out and answers, then exits (docs/browsers.md).

#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>
#include <string_view>
#include <system_error>

#include "client/client.hpp"
#include "common/encoding.hpp"
#include "common/version.hpp"
#include "webeid/commands.hpp"
#include "webeid/messages.hpp"

namespace {

constexpr const char* kHelp = R"(usage: kortti-webeid [--help | --version]

The native messaging host through which the Web eID browser extension
reaches kortti: a browser starts it (its host manifest is eu.webeid) and
talks to it over standard input and output, never a person. It carries out
one command and exits:

  authenticate             a Web eID login token for the page's origin and
                           challenge nonce, made with the card's
                           authentication key (korttid's auth.token)
  get-signing-certificate  the card's signature certificate and the
                           algorithms it signs with, once the user allowed
                           it in korttid's dialog (certificates.share)
  sign                     the page's hash signed with the signature key
                           (korttid's sign.digest)

korttid asks for the PIN itself, in a dialog naming the page's origin
(pin_prompt): no PIN passes through this program or the browser. The socket
is $KORTTI_SOCKET, else the per-user instance's
$XDG_RUNTIME_DIR/korttid/korttid.sock, else /run/korttid/korttid.sock.

Each message is a 32-bit length in this machine's byte order and that many
bytes of UTF-8 JSON; a command is 5 to 8192 bytes. A failure is answered as
{"error": {"code": "ERR_WEBEID_USER_CANCELLED" or "ERR_WEBEID_NATIVE_FATAL",
"message": ...}} and logged to standard error, which the browser keeps.

Exit status: 0 when the command was carried out, 1 when its answer is an
error, 2 when the browser could not be answered at all.

See docs/browsers.md, kortti(1), korttid(8).
)";

using kortti::Json;
using namespace kortti::webeid;

std::string command_of(const Json& request) {
  const auto it = request.find("command");
  return it != request.end() && it->is_string()
             ? kortti::printable(kortti::to_std(it->get_ref<const kortti::WipingString&>()), 40)
             : "?";
}

}  // namespace

int main(int argc, char** argv) {
  // Browsers pass their own arguments (the extension's id, the manifest's
  // path): only these two are ours.
  if (argc == 2 && std::string_view(argv[1]) == "--help") return std::cout << kHelp, 0;
  if (argc == 2 && std::string_view(argv[1]) == "--version")
    return std::cout << "kortti-webeid " << kortti::kVersion << " (Web eID " << kWebEidVersion << ")\n", 0;
  std::signal(SIGPIPE, SIG_IGN);

  try {
    write_message(1, {{"version", kortti::wstr(announced_version())}});
  } catch (const std::exception& e) {
    std::cerr << "kortti-webeid: " << e.what() << "\n";
    return 2;
  }
  std::string command = "?";
  Json reply;
  try {
    const Json request = read_message(0);
    command = command_of(request);
    std::unique_ptr<kortti::client::Client> korttid;
    auto connect = [&korttid]() -> kortti::client::Client& {
      if (!korttid) {
        korttid = std::make_unique<kortti::client::Client>(kortti::client::Client::default_socket());
        korttid->call("system.hello", {{"client", "kortti-webeid"}});
      }
      return *korttid;
    };
    reply = run_command(request, connect);
  } catch (const Failure& f) {
    reply = error_message(f.code(), f.what());
  } catch (const kortti::client::RpcError& e) {
    // 1013: the user cancelled korttid's PIN dialog, or let it time out.
    reply = error_message(e.code() == 1013 ? kCancelled : kFatal,
                          std::string("korttid: ") + e.what() + " (" + e.reason() + ")");
  } catch (const std::system_error& e) {
    reply = error_message(kFatal, std::string("korttid is not reachable: ") + e.what());
  } catch (const std::exception& e) {
    reply = error_message(kFatal, e.what());
  }
  const bool failed = reply.contains("error");
  if (failed)
    std::cerr << "kortti-webeid: " << command << ": "
              << kortti::to_std(reply["error"]["code"].get_ref<const kortti::WipingString&>()) << ": "
              << kortti::to_std(reply["error"]["message"].get_ref<const kortti::WipingString&>()) << "\n";
  try {
    write_message(1, reply);
  } catch (const std::exception& e) {
    std::cerr << "kortti-webeid: " << e.what() << "\n";
    return 2;
  }
  return failed ? 1 : 0;
}
