// kortti-webeid: the native messaging host of the Web eID browser extension.
// The browser starts it for one command: it announces its version, reads the
// command, has korttid carry it out and answers, then exits (docs/browsers.md).

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
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
(pin_prompt): no PIN passes through this program or the browser. It asks
the user's own korttid (korttid-user.service), whose dialogs appear in the
user's session: $KORTTI_SOCKET, else $XDG_RUNTIME_DIR/korttid/korttid.sock.
The system instance shows no dialog for other users, so is never asked.

Each message is a 32-bit length in this machine's byte order and that many
bytes of UTF-8 JSON; a command is 5 to 8192 bytes. A failure is answered as
{"error": {"code": "ERR_WEBEID_USER_CANCELLED" or "ERR_WEBEID_NATIVE_FATAL",
"message": ...}} and logged to standard error, which the browser keeps.

Exit status: 0 when the command was carried out, 1 when its answer is an
error (also an answer over 1 MiB, which no browser reads: the error says
so), 2 when the browser could not be answered at all. A browser ends the
host when the page goes; korttid then closes its dialog.

See docs/browsers.md, kortti(1), korttid(8).
)";

using kortti::Json;
using namespace kortti::webeid;

// The user's own korttid: only it shows this user's dialogs (a system
// instance refuses them for any uid but its own), and every command that
// reaches korttid needs one.
std::string user_socket() {
  if (const char* socket = std::getenv("KORTTI_SOCKET"); socket != nullptr && *socket != '\0') return socket;
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime == nullptr || *runtime == '\0')
    throw Failure(kFatal, "XDG_RUNTIME_DIR is not set: the user's korttid (korttid-user.service) cannot be found");
  return std::string(runtime) + "/korttid/korttid.sock";
}

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
  std::optional<Failure> failure;
  try {
    const Json request = read_message(0);
    command = command_of(request);
    std::unique_ptr<kortti::client::Client> korttid;
    auto connect = [&korttid]() -> kortti::client::Client& {
      if (!korttid) {
        korttid = std::make_unique<kortti::client::Client>(user_socket());
        korttid->call("system.hello", {{"client", "kortti-webeid"}});
      }
      return *korttid;
    };
    const Json reply = run_command(request, connect);
    // An answer too long for a browser fails as a whole, and is answered so.
    write_message(1, reply);
    return 0;
  } catch (const Failure& f) {
    failure = f;
  } catch (const kortti::client::RpcError& e) {
    // 1013: the user cancelled korttid's PIN dialog, or let it time out.
    failure.emplace(e.code() == 1013 ? kCancelled : kFatal,
                    std::string("korttid: ") + e.what() + " (" + e.reason() + ")");
  } catch (const std::system_error& e) {
    failure.emplace(kFatal, std::string("korttid is not reachable: ") + e.what() +
                                " (the user's korttid: systemctl --user status korttid-user)");
  } catch (const std::exception& e) {
    failure.emplace(kFatal, e.what());
  }
  // What korttid or the page said is made fit for the browser's log.
  std::cerr << "kortti-webeid: " << command << ": " << failure->code() << ": " << kortti::printable(failure->what())
            << "\n";
  try {
    write_message(1, error_message(failure->code(), failure->what()));
  } catch (const std::exception& e) {
    std::cerr << "kortti-webeid: " << kortti::printable(e.what()) << "\n";
    return 2;
  }
  return 1;
}
