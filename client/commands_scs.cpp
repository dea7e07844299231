// kortti scs setup|remove: the SCS listener's certificate, and its CA in the
// user's browsers (docs/browsers.md). Works on the user's own files; korttid
// need not run.

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>

#include "client/commands.hpp"
#include "client/local_ca.hpp"
#include "common/user_dirs.hpp"

extern char** environ;

namespace kortti::cli {

namespace {

namespace fs = std::filesystem;

// How browsers list the CA; each setup replaces the one before.
constexpr const char* kNickname = "kortti local CA";

struct ScsOptions {
  std::string dir;
  std::vector<std::string> nssdbs;
  bool no_nss = false;
  int days = 397;
};

}  // namespace

// Where korttid's [scs] certificate and key are by default.
std::string scs_default_dir() { return user_data_home() + "/kortti/scs"; }

namespace {

// The NSS databases of the user's browsers: Chromium's (and Chrome's)
// ~/.pki/nssdb, and each Firefox profile's.
std::vector<std::string> browser_databases() {
  std::vector<std::string> out;
  const fs::path chromium = fs::path(user_home()) / ".pki/nssdb";
  if (fs::exists(chromium / "cert9.db")) out.push_back(chromium.string());
  std::error_code ec;
  for (const char* root : {".mozilla/firefox", "snap/firefox/common/.mozilla/firefox"}) {
    const fs::path dir = fs::path(user_home()) / root;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      if (fs::exists(it->path() / "cert9.db")) out.push_back(it->path().string());
  }
  return out;
}

// certutil's exit status, its output on our stderr only when it fails.
int certutil(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"certutil"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> c_argv;
  for (auto& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, "certutil", &actions, nullptr, c_argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return rc == ENOENT ? 127 : 126;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// Written whole under a new name, then renamed over the old file, with its
// mode set on the descriptor: whatever was left at the new name (and its
// mode or owner) is not reused.
void write_private(const fs::path& path, std::string_view text, mode_t mode) {
  const fs::path temporary = path.string() + ".new";
  if (::unlink(temporary.c_str()) != 0 && errno != ENOENT)
    throw std::runtime_error("cannot replace " + temporary.string() + ": " + std::strerror(errno));
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) throw std::runtime_error("cannot write " + temporary.string() + ": " + std::strerror(errno));
  bool ok = ::fchmod(fd, mode) == 0;
  for (std::size_t done = 0; ok && done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int saved = errno;
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    ::unlink(temporary.c_str());
    throw std::runtime_error("cannot write " + temporary.string() + ": " + std::strerror(saved));
  }
  fs::rename(temporary, path);
}

// The folder holds a private key: the user's own, and closed to others.
void prepare_folder(const fs::path& dir) {
  fs::create_directories(dir);
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw std::runtime_error(dir.string() + " is not a folder");
  if (st.st_uid != ::getuid())
    throw std::runtime_error(dir.string() + " belongs to uid " + std::to_string(st.st_uid) + ", not to you");
  if (::chmod(dir.c_str(), 0700) != 0)
    throw std::runtime_error("cannot close " + dir.string() + " to others: " + std::strerror(errno));
}

// Each database's verdict, printed; false when one failed.
bool for_each_database(const ScsOptions& o, const char* doing, const std::function<int(const std::string& db)>& step) {
  const std::vector<std::string> dbs = o.nssdbs.empty() ? browser_databases() : o.nssdbs;
  if (dbs.empty()) {
    std::cout << "no browser certificate database found (Chromium: ~/.pki/nssdb; Firefox: a profile); start the "
                 "browser once and run this again, or import the CA by hand\n";
    return true;
  }
  bool all = true;
  for (const auto& db : dbs) {
    const int rc = step(db);
    if (rc == 127) {
      std::cerr << "kortti: certutil is not installed (apt install libnss3-tools)\n";
      return false;
    }
    std::cout << "  " << db << ": " << (rc == 0 ? doing : "FAILED (certutil " + std::to_string(rc) + ")") << "\n";
    all = all && rc == 0;
  }
  return all;
}

int setup(const ScsOptions& o) {
  const fs::path dir = o.dir;
  prepare_folder(dir);
  const LocalCertificate made = make_local_certificate(user_name(), std::chrono::days(o.days));
  write_private(dir / "ca.pem", made.ca_pem, 0644);
  write_private(dir / "localhost.pem", made.leaf_pem, 0644);
  write_private(dir / "localhost.key", made.key_pem.view(), 0600);
  std::cout << "made " << (dir / "localhost.pem").string() << " and its key, valid " << o.days
            << " days, under a new CA that may name only localhost, 127.0.0.1 and ::1; the CA's private key is "
               "gone\n";
  if (o.no_nss) {
    std::cout << "the CA (" << (dir / "ca.pem").string() << ") was not put into any browser (--no-nss)\n";
    return 0;
  }
  std::cout << "trusting the CA for web sites only (C,,) in:\n";
  const std::string ca = (dir / "ca.pem").string();
  const bool ok = for_each_database(o, "trusted", [&](const std::string& db) {
    // An earlier setup's CA goes: its key is gone, it can issue nothing.
    while (certutil({"-D", "-d", "sql:" + db, "-n", kNickname}) == 0) {
    }
    return certutil({"-A", "-d", "sql:" + db, "-n", kNickname, "-t", "C,,", "-i", ca});
  });
  std::cout << "restart korttid-user (systemctl --user restart korttid-user) and the browser to use it\n";
  return ok ? 0 : 1;
}

int remove(const ScsOptions& o) {
  int status = 0;
  if (!o.no_nss) {
    std::cout << "removing the CA from:\n";
    if (!for_each_database(o, "removed", [&](const std::string& db) {
          while (certutil({"-D", "-d", "sql:" + db, "-n", kNickname}) == 0) {
          }
          return certutil({"-L", "-d", "sql:" + db}) == 127 ? 127 : 0;
        }))
      status = 1;
  }
  for (const char* name : {"localhost.key", "localhost.pem", "ca.pem"}) fs::remove(fs::path(o.dir) / name);
  std::error_code ec;
  fs::remove(o.dir, ec);  // only when empty
  std::cout << "removed the listener's certificate and key from " << o.dir << "\n";
  return status;
}

}  // namespace

Runner define_scs(CLI::App& cmd) {
  cmd.footer(
      "\nThe SCS interface (korttid's [scs], for browser EHRs) serves HTTPS on localhost\n"
      "with a certificate of your own. `kortti scs setup` makes it: a new CA that may\n"
      "name only localhost, 127.0.0.1 and ::1 (nameConstraints) issues the listener's\n"
      "certificate, and the CA's private key is never written anywhere, so nothing\n"
      "more can be issued under it. The CA is then trusted for web sites only (C,,)\n"
      "in your browsers' NSS databases: Chromium's ~/.pki/nssdb and each Firefox\n"
      "profile (certutil, from libnss3-tools). Files, in --dir (by default\n"
      "$XDG_DATA_HOME/kortti/scs, else ~/.local/share/kortti/scs, where korttid's\n"
      "[scs] certificate and key point): localhost.pem, localhost.key (0600), ca.pem.\n"
      "\n"
      "Renew before the certificate expires (397 days by default, as browsers allow\n"
      "for a server certificate) by running setup again: it replaces the files and\n"
      "the CA in each database. `kortti scs remove` takes the CA out of the\n"
      "databases and deletes the files.\n"
      "\n"
      "Exit status: 0 done; 1 a database could not be changed, or certutil is missing.");
  auto o = std::make_shared<ScsOptions>();
  o->dir = scs_default_dir();
  auto* setup_cmd = cmd.add_subcommand("setup", "make the listener's certificate and trust its CA in your browsers");
  auto* remove_cmd = cmd.add_subcommand("remove", "take the CA out of your browsers and delete the files");
  for (CLI::App* sub : {setup_cmd, remove_cmd}) {
    sub->add_option("--dir", o->dir, "where the files are (default: " + o->dir + ")")->option_text("PATH");
    sub->add_option("--nssdb", o->nssdbs, "an NSS database folder to change instead of the browsers' (repeatable)")
        ->option_text("DIR");
    sub->add_flag("--no-nss", o->no_nss, "leave the browsers' databases alone");
  }
  setup_cmd->add_option("--days", o->days, "validity of the certificate in days")->check(CLI::Range(1, 825));
  cmd.require_subcommand(1);
  Runner runner;
  runner.standalone = [o, setup_cmd](const Globals&) {
    try {
      return *setup_cmd ? setup(*o) : remove(*o);
    } catch (const std::exception& e) {
      std::cerr << "kortti: " << e.what() << "\n";
      return 1;
    }
  };
  return runner;
}

}  // namespace kortti::cli
