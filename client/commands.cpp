// What more than one command file needs: reading the daemon's answers,
// printing them, input files and PIN options.

#include "client/commands.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>

#include "client/pin_entry.hpp"

namespace kortti::cli {

using client::RpcError;

std::string user_name() {
  const passwd* pw = ::getpwuid(::getuid());
  return pw != nullptr ? pw->pw_name : "uid " + std::to_string(::getuid());
}

std::string text(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return to_std(it->get_ref<const WipingString&>());
}

std::string required_text(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) throw std::runtime_error(std::string("korttid's answer lacks '") + key + "'");
  return to_std(it->get_ref<const WipingString&>());
}

// Text that is not UTF-8 (a card's label may hold any bytes) is shown as U+FFFD.
void print_json(const Json& j) { std::cout << to_std(j.dump(2, ' ', false, Json::error_handler_t::replace)) << "\n"; }

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void PinOptions::add_to(CLI::App* cmd) {
  auto* fd = cmd->add_option("--pin-fd", pin_fd, "read the PIN from this file descriptor")
                 ->option_text("N")
                 ->check(CLI::NonNegativeNumber);
  auto* pad = cmd->add_flag("--pinpad", pinpad, "enter the PIN on the reader's PIN pad")->excludes(fd);
  cmd->add_flag("--pin-prompt", pin_prompt,
                "let korttid ask for the PIN in its own dialog (pinentry), so this program never sees it")
      ->excludes(fd)
      ->excludes(pad);
  cmd->add_flag("--final-try", final_try,
                "spend the PIN's last try when only one is left (a wrong PIN then locks the card)");
}

bool PinOptions::apply(Json& params) const {
  if (final_try) params["final_try"] = true;
  if (pinpad) {
    params["pinpad"] = true;
    return true;
  }
  if (pin_prompt) {
    params["pin_prompt"] = true;
    return true;
  }
  if (pin_fd >= 0) {
    put_scrubbed(params, "pin", client::read_pin_from_fd(pin_fd).view());
    return true;
  }
  return false;
}

std::string registry_summary(const Json& r) {
  if (!r.is_object()) return "not in use";
  if (!r.value("imported", false)) return "nothing imported";
  return std::to_string(r.value("records", 0)) + " professionals from " + text(r, "source") + ", imported " +
         text(r, "imported_at") + (r.value("stale", false) ? " (STALE)" : "");
}

void field(const char* label, const std::string& value) {
  if (!value.empty()) std::cout << "  " << label << std::string(16 - std::string(label).size(), ' ') << value << "\n";
}

void print_validation(const Json& v) {
  if (!v.is_object()) return;
  std::cout << "Certificate: " << text(v, "status");
  if (v.contains("message")) std::cout << " (" << text(v, "message") << ")";
  std::cout << "\n";
  for (const auto& s : v["chain"]) field("chain", to_std(s.get_ref<const WipingString&>()));
  const Json& r = v["revocation"];
  field("revocation", text(r, "method") + " " + text(r, "status") + (r.value("cached", false) ? " (cached)" : "") +
                          (r.contains("fail_mode") ? ", " + text(r, "fail_mode") + " applied" : "") +
                          (r.contains("reason") ? ": " + text(r, "reason") : ""));
}

void print_reasons(const char* title, const Json& list) {
  if (list.empty()) return;
  std::cout << title << ":\n";
  for (const auto& r : list) std::cout << "  - " << text(r, "code") << ": " << text(r, "message") << "\n";
}

// Total: it reports what an error answer holds, however malformed, as
// main's last word.
void print_error(const RpcError& e) {
  const Json& data = e.data();
  std::cerr << "kortti: " << e.what() << " (" << e.reason();
  if (const auto n = data.find("tries_left"); n != data.end() && n->is_number_integer())
    std::cerr << ", " << n->get<std::int64_t>() << (*n == 1 ? " try left" : " tries left");
  std::cerr << ")\n";
  if (text(data, "detail") == "final_try_not_confirmed")
    std::cerr << "kortti: a wrong PIN now locks the card; if you are sure of the PIN, run the command again "
                 "with --final-try\n";
  if (const auto reasons = data.find("reasons"); reasons != data.end() && reasons->is_array())
    for (const auto& r : *reasons)
      if (r.is_object()) std::cerr << "  - " << text(r, "code") << ": " << text(r, "message") << "\n";
}

Json call_with_pin(client::Client& c, const std::string& method, Json params, const PinOptions& pin,
                   const std::string& what, std::string_view attach) {
  const bool given = pin.apply(params);
  try {
    return c.call_attached(method, params, attach);
  } catch (const client::RpcError& e) {
    if (given || e.reason() != "pin_required") throw;
  }
  put_scrubbed(params, "pin", client::prompt_pin("PIN for " + what + ": ").view());
  return c.call_attached(method, params, attach);
}

}  // namespace kortti::cli
