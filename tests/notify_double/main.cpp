// A TEST DOUBLE of the desktop's notification server, for the test suite
// only: it owns org.freedesktop.Notifications on the session bus that
// DBUS_SESSION_BUS_ADDRESS names, answers Notify as a desktop would, and
// writes each notification as a line "URGENCY<TAB>SUMMARY<TAB>BODY" to the
// file given as its argument. It touches FILE.ready once it owns the name.
// (A real server — GNOME Shell, dunst — needs a display.)

#include <systemd/sd-bus.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace {

std::string g_out;
unsigned g_next_id = 1;

int notify(sd_bus_message* m, void* /*userdata*/, sd_bus_error* /*error*/) {
  const char* app = nullptr;
  unsigned replaces = 0;
  const char* icon = nullptr;
  const char* summary = nullptr;
  const char* body = nullptr;
  if (sd_bus_message_read(m, "susss", &app, &replaces, &icon, &summary, &body) < 0) return -22;
  if (sd_bus_message_skip(m, "as") < 0) return -22;
  int urgency = -1;
  if (sd_bus_message_enter_container(m, 'a', "{sv}") >= 0) {
    while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
      const char* key = nullptr;
      sd_bus_message_read(m, "s", &key);
      unsigned char byte = 0;
      if (std::string(key) == "urgency" && sd_bus_message_read(m, "v", "y", &byte) >= 0)
        urgency = byte;
      else
        sd_bus_message_skip(m, "v");
      sd_bus_message_exit_container(m);
    }
    sd_bus_message_exit_container(m);
  }
  std::ofstream(g_out, std::ios::app) << urgency << "\t" << summary << "\t" << body << "\n";
  return sd_bus_reply_method_return(m, "u", g_next_id++);
}

const sd_bus_vtable kVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Notify", "susssasa{sv}i", "u", notify, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: kortti-notify-double FILE\n");
    return 64;
  }
  g_out = argv[1];
  sd_bus* bus = nullptr;
  if (sd_bus_open_user(&bus) < 0) return 1;
  if (sd_bus_add_object_vtable(bus, nullptr, "/org/freedesktop/Notifications", "org.freedesktop.Notifications",
                               kVtable, nullptr) < 0)
    return 1;
  if (sd_bus_request_name(bus, "org.freedesktop.Notifications", 0) < 0) return 1;
  std::ofstream(g_out + ".ready") << "ready\n";
  for (;;) {
    const int r = sd_bus_process(bus, nullptr);
    if (r < 0) return 1;
    if (r > 0) continue;
    if (sd_bus_wait(bus, UINT64_MAX) < 0) return 1;
  }
}
