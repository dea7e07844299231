#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <iterator>
#include <set>
#include <utility>

#include "pkcs11/module.hpp"
#include "pkcs11/pkcs11.hpp"
#include "pkcs11/token.hpp"

namespace kortti::pkcs11 {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// `cert_id` in a token's list as it was read when the token opened; null
// when the list lacks it.
const CertificateInfo* find_listed(const std::vector<CertificateInfo>& listed, const std::string& cert_id) {
  const auto it = std::find_if(listed.begin(), listed.end(), [&](const auto& c) { return c.cert_id == cert_id; });
  return it != listed.end() ? &*it : nullptr;
}

// A token operation's completion, reported once: either the card's answer,
// or a failure raised from outside (card pulled, shutdown). `done` is the
// awaiting coroutine's resumer, which takes it to the io thread itself.
template <class T>
class Operation final : public PendingOperation {
 public:
  explicit Operation(Completion<T> done) : done_(std::move(done)) {}

  void finish(Result<T> result) {
    if (finished_.exchange(true)) return;
    // Taken out, not called in place (a moved-from std::function still holds
    // its target): once its resumption is posted, the awaiting coroutine is
    // owned by that post alone, never by this operation, which the worker's
    // job and the token's list of pending operations keep.
    Completion<T> done = std::exchange(done_, nullptr);
    done(std::move(result));
  }
  void fail(Error error) override { finish(Result<T>(std::move(error))); }
  [[nodiscard]] bool finished() const noexcept { return finished_.load(); }

 private:
  Completion<T> done_;
  std::atomic<bool> finished_{false};
};

// token_id: manufacturer + serial number, with anything outside [A-Za-z0-9._-]
// replaced, so it can stand before the '/' of a cert_id.
std::string base_token_id(const SlotSnapshot& s) {
  auto clean = [](std::string v) {
    for (char& c : v)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
    return v;
  };
  std::string serial = clean(padded_string(s.token.serialNumber, sizeof s.token.serialNumber));
  if (serial.empty()) serial = "slot" + std::to_string(s.id);
  std::string maker = clean(padded_string(s.token.manufacturerID, sizeof s.token.manufacturerID));
  return maker.empty() ? serial : maker + "-" + serial;
}

}  // namespace

class TokenService::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& io, Options options)
      : io_(io), options_(std::move(options)), hooks_(std::make_shared<TokenHooks>()), sweep_(io) {}

  asio::io_context& io_;
  Options options_;
  std::shared_ptr<TokenHooks> hooks_;
  std::vector<std::shared_ptr<Module>> modules_;
  std::map<std::string, std::shared_ptr<Token>> tokens_;
  // Every token made and not yet gone, also those still opening or already
  // removed: each may hold sessions, and all must be closed before the module
  // is finalized (io thread).
  std::vector<std::weak_ptr<Token>> made_;
  // Tokens a scan found that are still opening (io thread). A later scan
  // neither waits for them nor opens their slot again; if one that saw the
  // slot again fails to open, the slots are looked at anew (the card may
  // have been pulled and put back). A card's removal drops them instead.
  struct Opening {
    std::shared_ptr<Token> token;
    bool look_again_if_it_fails = false;
  };
  std::vector<Opening> opening_;
  std::vector<EventHandler> handlers_;
  bool started_ = false;
  bool stopping_ = false;
  bool scanning_ = false;
  bool scan_again_ = false;
  std::vector<Completion<Unit>> current_waiters_;
  std::vector<Completion<Unit>> next_waiters_;
  asio::steady_timer sweep_;
  std::set<std::string> in_session_;  // tokens whose logged_in was told and logged_out not yet (io thread)

  void emit(TokenEvent::Type type, TokenInfo info) {
    // A session's end is told once, by whoever sees it first: the card's
    // thread (a logout, a failed PIN check) or this one (the card pulled).
    if (type == TokenEvent::Type::logged_in) in_session_.insert(info.token_id);
    if (type == TokenEvent::Type::logged_out && in_session_.erase(info.token_id) == 0) return;
    const TokenEvent event{type, std::move(info)};
    for (auto& h : handlers_) h(event);
  }

  std::shared_ptr<Token> find_token(std::string_view id) const {
    auto it = tokens_.find(std::string(id));
    return it == tokens_.end() ? nullptr : it->second;
  }

  // Logs a session out past its lifetime before the next operation uses it.
  void expire_on_worker(const std::shared_ptr<Token>& token) {
    if (!token->expire_if_due()) return;
    asio::post(io_, [self = shared_from_this(), info = token->info()] {
      spdlog::info("token {}: session expired, logged out", info.token_id);
      self->emit(TokenEvent::Type::logged_out, info);
    });
  }

  // Runs `fn` on the token's worker and resumes the caller on the io thread
  // with its value or Error. Unlike common/task.hpp's on(), the operation can
  // also be ended from outside: a card pulled or korttid stopping fails it
  // at once (Token::fail_pending), whatever the card call is still doing.
  // The job counts against `owner`'s share of the card's queue (a uid's:
  // one user's flood of work that waits for a busy card, answered or not,
  // leaves room for everyone else's) until its answer goes.
  template <class Fn>
  Task<std::invoke_result_t<Fn&, Token&>> on_token(std::shared_ptr<Token> token, Worker::Owner owner,
                                                   std::stop_token stop, Fn fn) {
    using T = std::invoke_result_t<Fn&, Token&>;
    auto start = [self = shared_from_this(), token, owner, stop = std::move(stop),
                  fn = std::move(fn)](Completion<T> done) mutable {
      auto op = std::make_shared<Operation<T>>(std::move(done));
      token->track(op);
      if (const Worker::Admission a = token->worker().admit(0, owner); a != Worker::Admission::admitted) {
        op->finish(a == Worker::Admission::share_full
                       ? Error(Errc::service_unavailable,
                               "uid " + std::to_string(owner.value_or(0)) + " has " +
                                   std::to_string(Token::kMaxQueuedJobsPerUid) +
                                   " operations waiting for this card, its share; try again when it has caught up")
                       : Error(Errc::service_unavailable, "the card has " + std::to_string(Token::kMaxQueuedJobs) +
                                                              " operations waiting; try again when it has caught up"));
        return;
      }
      token->worker().post_admitted(
          [self, token, op, stop = std::move(stop), fn = std::move(fn)]() mutable -> Worker::Delivery {
            if (op->finished()) return {};
            if (stop.stop_requested())
              return [op] { op->finish(Error(Errc::token_busy, "the card stayed busy past the request's deadline")); };
            // What throws around the card's call (no memory) still answers:
            // the caller would otherwise wait until the card is pulled.
            try {
              return self->run_on_worker(token, op, fn);
            } catch (const std::exception& e) {
              auto failed = std::make_shared<Error>(internal_error("a card's worker", e.what()));
              return [op, failed] { op->finish(*failed); };
            }
          },
          0, owner);
    };
    return completion<T>(std::move(start));
  }

  template <class T, class Fn>
  Worker::Delivery run_on_worker(const std::shared_ptr<Token>& token, const std::shared_ptr<Operation<T>>& op, Fn& fn) {
    expire_on_worker(token);
    // Whatever ends a session tells the watchers, before its answer goes:
    // a logout, and also a PIN that failed its re-check inside the session
    // or an unblock (a TLS tunnel on the session must end with it).
    const bool in_session = token->info().logged_in;
    auto result = std::make_shared<Result<T>>(capture([&] { return fn(*token); }));
    if (in_session) {
      TokenInfo after = token->info();
      if (!after.logged_in)
        asio::post(io_, [self = shared_from_this(), info = std::move(after)] {
          self->emit(TokenEvent::Type::logged_out, info);
        });
    }
    const bool removed = !result->ok() && result->error().code() == Errc::card_removed;
    if (removed) asio::post(io_, [self = shared_from_this()] { self->rescan({}); });
    // Answered once the job no longer counts against its owner's share.
    return [op, result] { op->finish(std::move(*result)); };
  }

  void rescan(Completion<Unit> done) {
    if (scanning_) {
      if (done) next_waiters_.push_back(std::move(done));
      scan_again_ = true;
      return;
    }
    if (done) current_waiters_.push_back(std::move(done));
    scan();
  }

  // A scan for current_waiters_; none may be under way.
  void scan() {
    scanning_ = true;
    struct Scan {
      std::vector<std::optional<std::vector<SlotSnapshot>>> results;
      std::size_t remaining = 0;
    };
    auto scan = std::make_shared<Scan>();
    scan->results.resize(modules_.size());
    for (auto& m : modules_)
      if (m->loaded()) ++scan->remaining;
    if (scan->remaining == 0 || stopping_) {
      apply_scan(scan->results);
      return;
    }
    for (std::size_t i = 0; i < modules_.size(); ++i) {
      auto module = modules_[i];
      if (!module->loaded()) continue;
      module->worker().post([self = shared_from_this(), module, i, scan] {
        std::optional<std::vector<SlotSnapshot>> slots;
        try {
          slots = module->scan();
          if (!std::exchange(module->scan_failure, {}).empty())
            spdlog::info("PKCS#11 module {}: lists its slots again", module->status().path);
        } catch (const Error& e) {
          if (e.detail != module->scan_failure)
            spdlog::warn("PKCS#11 module {}: cannot list slots: {} (said once until it changes)", module->status().path,
                         e.detail);
          module->scan_failure = e.detail;
        } catch (const std::exception& e) {
          // Anything else too: the scan waits for every module's answer.
          (void)internal_error("a PKCS#11 slot scan", e.what());
        }
        asio::post(self->io_, [self, i, scan, slots = std::move(slots)]() mutable {
          scan->results[i] = std::move(slots);
          if (--scan->remaining == 0) self->apply_scan(scan->results);
        });
      });
    }
  }

  // What the modules listed, applied. The scan's waiters are answered once
  // the tokens it found have opened (a `cert_id` of a card present at start
  // is then found), but the next scan does not wait for them: one card slow
  // to open (a PC/SC transaction another program holds, a card with many
  // certificates) would keep every other card out until it had.
  void apply_scan(const std::vector<std::optional<std::vector<SlotSnapshot>>>& results) {
    auto waiters = std::make_shared<std::vector<Completion<Unit>>>(std::exchange(current_waiters_, {}));
    auto opening = std::make_shared<std::size_t>(1);
    auto one_done = [opening, waiters] {
      if (--*opening == 0)
        for (auto& w : *waiters) w(Unit{});
    };
    for (std::size_t i = 0; i < results.size() && !stopping_; ++i) {
      if (!results[i]) continue;  // the module could not answer; keep what we had
      const auto& slots = *results[i];
      const Module* module = modules_[i].get();
      auto listed = [&slots](const Token& held) {
        return std::any_of(slots.begin(), slots.end(),
                           [&held](const SlotSnapshot& s) { return held.is_same_token(s); });
      };
      std::vector<std::string> gone;
      for (auto& [id, token] : tokens_)
        if (&token->module() == module && !listed(*token)) gone.push_back(id);
      for (auto& id : gone) remove_token(id);
      // One still opening whose slot is gone is closed when its opening ends.
      std::erase_if(opening_, [&](const Opening& o) { return &o.token->module() == module && !listed(*o.token); });
      for (const SlotSnapshot& slot : slots) {
        auto same = [&](const std::shared_ptr<Token>& t) { return &t->module() == module && t->is_same_token(slot); };
        auto existing = std::find_if(tokens_.begin(), tokens_.end(), [&](const auto& kv) { return same(kv.second); });
        if (existing != tokens_.end()) {
          existing->second->update_from(slot);
          continue;
        }
        auto half_open =
            std::find_if(opening_.begin(), opening_.end(), [&](const Opening& o) { return same(o.token); });
        if (half_open != opening_.end()) {
          half_open->look_again_if_it_fails = true;
          continue;
        }
        auto token = std::make_shared<Token>(modules_[i], slot, unused_token_id(base_token_id(slot)), hooks_, options_);
        opening_.push_back(Opening{token});
        ++*opening;
        open_token(std::move(token), one_done);
      }
    }
    one_done();
    end_scan();
  }

  // `base`, or base-2, base-3, ...: the first that no token present or
  // opening has.
  std::string unused_token_id(const std::string& base) const {
    auto taken = [&](const std::string& id) {
      return tokens_.count(id) != 0 ||
             std::any_of(opening_.begin(), opening_.end(), [&](const Opening& o) { return o.token->id() == id; });
    };
    std::string id = base;
    for (int n = 2; taken(id); ++n) id = base + "-" + std::to_string(n);
    return id;
  }

  // A token found by a scan is opened on its own worker, and published (a
  // `present` event) once it is; `done` runs on the io thread either way.
  void open_token(std::shared_ptr<Token> token, std::function<void()> done) {
    std::erase_if(made_, [](const auto& w) { return w.expired(); });
    made_.push_back(token);
    token->worker().post([self = shared_from_this(), token, done = std::move(done)] {
      Result<Unit> opened = capture([&] {
        token->open();
        return Unit{};
      });
      if (!opened.ok()) token->close();
      asio::post(self->io_, [self, token, opened, done] {
        std::optional<Opening> wanted;
        if (auto it = std::find_if(self->opening_.begin(), self->opening_.end(),
                                   [&](const Opening& o) { return o.token == token; });
            it != self->opening_.end()) {
          wanted = *it;
          self->opening_.erase(it);
        }
        if (!opened.ok()) {
          spdlog::warn("token {}: cannot open a session: {}", token->id(), opened.error().detail);
          if (wanted && wanted->look_again_if_it_fails && !self->stopping_) self->rescan({});
        } else if (self->stopping_) {
          // shutdown() closes it with the others
        } else if (!wanted) {
          spdlog::info("token {}: gone while it was opening", token->id());
          token->worker().post([token] { token->close(); });
        } else {
          self->tokens_[token->id()] = token;
          const TokenInfo info = token->info();
          spdlog::info("token {} present: '{}' in slot {} ({})", info.token_id, info.label, info.slot_id,
                       info.reader.value_or(info.slot_description));
          self->emit(TokenEvent::Type::present, info);
        }
        done();
      });
    });
  }

  void remove_token(const std::string& id) {
    auto it = tokens_.find(id);
    if (it == tokens_.end()) return;
    std::shared_ptr<Token> token = it->second;
    tokens_.erase(it);
    // A card put in again is a physical act, which no local uid can repeat
    // to flood the audit trail: its PUK is asked again (it may have been
    // reset, or be another card). Not while another token of the card (a
    // second module's, another PIN's slot) is still there.
    const PinKey key = token->pin_key();
    if (std::none_of(tokens_.begin(), tokens_.end(),
                     [&](const auto& kv) { return kv.second->pin_key().card == key.card; }))
      hooks_->pin_guard->forget_puk_locked(key);
    TokenInfo info = token->info();
    token->fail_pending(Error(Errc::card_removed, "the card was removed during the operation"));
    // Close on the token's own thread: that is where its last reference goes,
    // and a call stuck on the vanished card only holds up that thread.
    token->worker().post([token] { token->close(); });
    spdlog::info("token {} absent", id);
    if (info.logged_in) emit(TokenEvent::Type::logged_out, info);
    info.logged_in = false;
    info.session_owner.reset();
    info.session_expires_at.reset();
    emit(TokenEvent::Type::absent, info);
  }

  // The scan under way has been applied: the one asked for meanwhile, if
  // any, starts with its waiters.
  void end_scan() {
    scanning_ = false;
    if (!std::exchange(scan_again_, false)) return;
    current_waiters_ = std::exchange(next_waiters_, {});
    scan();
  }

  std::chrono::milliseconds sweep_interval() const {
    const auto shortest = std::min(options_.session_lifetime, options_.session_idle);
    return std::clamp<std::chrono::milliseconds>(shortest / 2, 500ms, 15s);
  }

  void schedule_sweep() {
    sweep_.expires_after(sweep_interval());
    sweep_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->stopping_) return;
      for (auto& [id, token] : self->tokens_)
        if (token->info().logged_in) token->worker().post([self, held = token] { self->expire_on_worker(held); });
      self->schedule_sweep();
    });
  }

  // 1012 if the token's PIN is locked. The flag korttid last read is not
  // trusted to say so (another program may have unblocked the card since):
  // a PIN it shows locked is looked at again on the card's worker.
  Task<Unit> check_not_locked(std::shared_ptr<Token> token, uid_t uid, std::stop_token stop) {
    if (!token->info().user_pin.locked) co_return Unit{};
    auto locked_now = [](Token& t) { return t.pin_locked_now(); };
    if (co_await on_token(token, uid, std::move(stop), locked_now))
      throw Error(Errc::pin_locked, "the PIN is locked: unblock it first (kortti pin unblock)");
    co_return Unit{};
  }

  std::shared_ptr<Token> require_token(const std::string& token_id) const {
    auto token = find_token(token_id);
    if (!token) throw Error(Errc::token_not_found, "no card with token id '" + token_id + "' is present");
    return token;
  }

  std::shared_ptr<Token> token_of_cert(const std::string& cert_id) const {
    const auto slash = cert_id.rfind('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == cert_id.size())
      throw Error(Errc::invalid_params, "cert_id must look like <token_id>/<CKA_ID in hex>");
    return require_token(cert_id.substr(0, slash));
  }
};

TokenService::TokenService(asio::io_context& io, Options options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}

TokenService::~TokenService() { impl_->sweep_.cancel(); }

void TokenService::start(Completion<Unit> done) {
  impl_->started_ = true;
  for (const auto& path : impl_->options_.modules) {
    auto module = Module::load(path);
    if (module->loaded()) {
      spdlog::info("PKCS#11 module {} loaded: {} {} {}", path, module->status().manufacturer,
                   module->status().description, module->status().library_version);
    } else {
      spdlog::error("PKCS#11 module {} not loaded: {}", path, module->status().error);
    }
    impl_->modules_.push_back(std::move(module));
  }
  impl_->schedule_sweep();
  impl_->rescan(std::move(done));
}

bool TokenService::shutdown(std::chrono::milliseconds grace) {
  impl_->stopping_ = true;
  impl_->sweep_.cancel();
  // Not only the present tokens: one still opening (a scan under way) or
  // removed with its close still queued holds sessions too, and a session
  // closed after C_Finalize calls into a module that is gone.
  std::vector<std::shared_ptr<Token>> tokens;
  for (const auto& made : impl_->made_)
    if (auto token = made.lock()) tokens.push_back(std::move(token));
  impl_->made_.clear();
  impl_->tokens_.clear();
  impl_->opening_.clear();
  spdlog::debug("stopping: closing the sessions of {} token(s) before the modules finalize", tokens.size());
  const auto deadline = std::chrono::steady_clock::now() + grace;
  auto left = [&] {
    return std::max(0ms,
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
  };
  bool stuck = false;
  for (auto& token : tokens) {
    token->fail_pending(Error(Errc::service_unavailable, "korttid is stopping"));
    token->worker().post([token] { token->close(); });
  }
  for (auto& token : tokens) stuck |= !token->worker().stop_and_wait(left());
  if (stuck) spdlog::warn("a card call is still running; PKCS#11 modules are left as they are");
  // C_Finalize runs on the module's own thread, inside the same bounded
  // wait: a module can hang there too (OpenSC disconnecting a card that
  // pcscd is still busy removing), and shutdown must end all the same.
  for (auto& module : impl_->modules_) {
    if (!stuck) module->worker().post([module] { module->finalize(); });
    if (!module->worker().stop_and_wait(left())) {
      spdlog::warn("PKCS#11 module {} did not finish within {} ms; it is left as it is", module->status().path,
                   grace.count());
      stuck = true;
    }
  }
  return !stuck;
}

std::vector<ModuleStatus> TokenService::modules() const {
  std::vector<ModuleStatus> out;
  for (auto& m : impl_->modules_) out.push_back(m->status());
  return out;
}

std::vector<TokenInfo> TokenService::tokens() const {
  std::vector<TokenInfo> out;
  for (auto& [id, token] : impl_->tokens_) out.push_back(token->info());
  return out;
}

std::optional<TokenInfo> TokenService::token(std::string_view token_id) const {
  auto token = impl_->find_token(token_id);
  return token ? std::optional(token->info()) : std::nullopt;
}

void TokenService::rescan(Completion<Unit> done) { impl_->rescan(std::move(done)); }

// For the operations no deadline stops (a logout, a certificate read).
// Named: GCC 12 may destroy a temporary made inside a co_await twice
// (common/task.hpp).
const std::stop_token kNoStop;

// Each operation keeps its own reference to the service's state across its
// co_awaits: the TokenService may be gone when a card answers at shutdown.

Task<std::vector<CertificateInfo>> TokenService::certificates(std::optional<std::string> token_id) {
  if (!token_id) {
    Listing all = co_await all_certificates();
    co_return std::move(all.certificates);
  }
  const auto impl = impl_;
  auto token = impl->require_token(*token_id);
  if (const auto known = token->known_certificates()) co_return *known;
  auto list = [](Token& t) { return t.certificates(); };
  co_return co_await impl->on_token(std::move(token), std::nullopt, kNoStop, std::move(list));
}

Task<TokenService::Listing> TokenService::all_certificates() {
  const auto impl = impl_;
  std::vector<std::shared_ptr<Token>> tokens;
  for (const auto& [id, token] : impl->tokens_) tokens.push_back(token);
  Listing all;
  for (const auto& token : tokens) {
    // One pulled while an earlier one was asked is not listed.
    if (impl->find_token(token->id()) != token) continue;
    // Lists read at open come straight from memory; only a token whose list
    // could not be read then is asked (on its own worker).
    if (const auto known = token->known_certificates()) {
      all.certificates.insert(all.certificates.end(), known->begin(), known->end());
      continue;
    }
    auto list = [](Token& t) { return t.certificates(); };
    Result<std::vector<CertificateInfo>> read = co_await attempt(impl->on_token(token, std::nullopt, kNoStop, list));
    if (!read.ok()) {
      spdlog::warn("token {}: cannot list certificates: {}", token->id(), read.error().what());
      if (!all.unreadable) {
        Error why(read.error().code(),
                  "the certificates of token " + token->id() + " cannot be read: " + read.error().what());
        why.detail = read.error().detail;
        all.unreadable = std::move(why);
      }
      continue;
    }
    auto part = std::move(read).value();
    std::move(part.begin(), part.end(), std::back_inserter(all.certificates));
  }
  co_return all;
}

Error TokenService::Listing::none_fit(const std::string& what) const {
  if (!unreadable) return Error(Errc::not_found, "no card present has " + what);
  Error e(unreadable->code(), "no card korttid could read has " + what + "; " + unreadable->what());
  e.detail = unreadable->detail;
  return e;
}

Task<CertificateInfo> TokenService::certificate(std::string cert_id) {
  const auto impl = impl_;
  auto token = impl->token_of_cert(cert_id);
  // What the token listed when it was opened is answered from memory: a
  // lookup does not queue behind another client's card operation.
  // Nor does an id the list lacks: the list is the card's, read whole.
  if (auto known = token->known_certificates()) {
    if (const CertificateInfo* c = find_listed(*known, cert_id)) co_return *c;
    throw certificate_not_found(cert_id);
  }
  auto read = [cert_id](Token& t) { return t.certificate(cert_id); };
  co_return co_await impl->on_token(std::move(token), std::nullopt, kNoStop, std::move(read));
}

Task<LoginResult> TokenService::login(std::string token_id, Credentials credentials, uid_t uid, std::stop_token stop) {
  const auto impl = impl_;
  auto token = impl->require_token(token_id);
  auto log_in = [held = std::make_shared<Credentials>(std::move(credentials)), uid](Token& t) {
    return t.login(*held, uid);
  };
  LoginResult result = co_await impl->on_token(token, uid, std::move(stop), std::move(log_in));
  impl->emit(TokenEvent::Type::logged_in, token->info());
  co_return result;
}

Task<bool> TokenService::logout(std::string token_id, uid_t uid) {
  const auto impl = impl_;
  auto token = impl->require_token(token_id);
  auto log_out = [uid](Token& t) { return t.logout(uid); };
  co_return co_await impl->on_token(std::move(token), uid, kNoStop, std::move(log_out));
}

Task<Unit> TokenService::change_pin(std::string token_id, PinChange change, uid_t uid, std::stop_token stop) {
  const auto impl = impl_;
  auto token = impl->require_token(token_id);
  auto set = [held = std::make_shared<PinChange>(std::move(change)), uid](Token& t) {
    t.change_pin(*held, uid);
    return Unit{};
  };
  co_await impl->on_token(token, uid, std::move(stop), std::move(set));
  impl->emit(TokenEvent::Type::pin_changed, token->info());
  co_return Unit{};
}

Task<Unit> TokenService::unblock_pin(std::string token_id, PinChange change, uid_t uid, std::stop_token stop) {
  const auto impl = impl_;
  auto token = impl->require_token(token_id);
  auto reset = [held = std::make_shared<PinChange>(std::move(change)), style = impl->options_.unblock_style,
                uid](Token& t) {
    t.unblock_pin(*held, style, uid);
    return Unit{};
  };
  co_await impl->on_token(token, uid, std::move(stop), std::move(reset));
  impl->emit(TokenEvent::Type::pin_unblocked, token->info());
  co_return Unit{};
}

Task<SignResult> TokenService::sign(SignRequest request, Credentials credentials, std::stop_token stop) {
  const auto impl = impl_;
  auto token = impl->token_of_cert(request.cert_id);
  const uid_t uid = request.uid;
  auto sign_one = [request = std::move(request), held = std::make_shared<Credentials>(std::move(credentials))](
                      Token& t) { return t.sign(request, *held); };
  co_return co_await impl->on_token(std::move(token), uid, std::move(stop), std::move(sign_one));
}

Task<Unit> TokenService::sign_many(std::vector<SignRequest> requests, Credentials credentials, std::stop_token stop,
                                   std::function<void(std::size_t index, Result<SignResult>)> each) {
  const auto impl = impl_;
  if (requests.empty()) throw Error(Errc::invalid_params, "nothing to sign");
  auto token = impl->token_of_cert(requests.front().cert_id);
  for (const auto& r : requests)
    if (r.cert_id.substr(0, r.cert_id.rfind('/')) != token->id())
      throw Error(Errc::invalid_params, "all items of a batch must use keys of one card");
  auto post_each = [io = &impl->io_, each = std::move(each)](std::size_t i, Result<SignResult> r) {
    asio::post(*io, [each, i, r = std::move(r)]() mutable { each(i, std::move(r)); });
  };
  const uid_t uid = requests.front().uid;
  auto sign_all = [requests = std::move(requests), held = std::make_shared<Credentials>(std::move(credentials)), stop,
                   post_each](Token& t) {
    t.sign_each(
        requests, *held, [stop] { return stop.stop_requested(); }, post_each);
    return Unit{};
  };
  co_return co_await impl->on_token(std::move(token), uid, stop, std::move(sign_all));
}

void TokenService::on_event(EventHandler handler) { impl_->handlers_.push_back(std::move(handler)); }

void TokenService::set_reader_resolver(ReaderResolver resolver) {
  if (impl_->started_) throw std::logic_error("set_reader_resolver after start");
  impl_->hooks_->reader_resolver = std::move(resolver);
}

void TokenService::check_last_try(const std::string& token_id, uid_t uid) const {
  impl_->hooks_->pin_guard->check_last_try(impl_->require_token(token_id)->pin_key(), uid);
}

Task<Unit> TokenService::check_may_sign(std::string cert_id, uid_t uid, const Credentials& credentials,
                                        std::stop_token stop, Purpose use) {
  const auto impl = impl_;
  const std::shared_ptr<Token> token = impl->token_of_cert(cert_id);
  // Where the token's list is known, an id it lacks is answered now: no
  // audit line, no place in the card's queue. The worker checks again.
  const auto known = token->known_certificates();
  const CertificateInfo* listed = known ? find_listed(*known, cert_id) : nullptr;
  if (known && !listed) throw certificate_not_found(cert_id);
  const TokenInfo info = token->info();
  const std::optional<uid_t> owner = info.live_session_owner();
  const bool pin_given = credentials.pin || credentials.pinpad || credentials.prompt;
  check_may_use(owner, info.login_required, uid, pin_given);
  // Refused before the policy and the documents' work; the worker checks
  // again (Token::authorize).
  if (use == Purpose::signature && owner && !pin_given && listed && has_purpose(*listed, Purpose::signature))
    throw signature_pin_required();
  // The card logs in for this request alone (a PIN2 key's own login comes
  // later, on the worker).
  if (!owner && info.login_required) token->check_login(credentials, uid);
  if (pin_given) co_await impl->check_not_locked(token, uid, std::move(stop));
  co_return Unit{};
}

Task<Unit> TokenService::check_may_login(std::string token_id, uid_t uid, const Credentials& credentials,
                                         std::stop_token stop) {
  const auto impl = impl_;
  const std::shared_ptr<Token> token = impl->require_token(token_id);
  const TokenInfo info = token->info();
  check_may_use(info.live_session_owner(), false, uid, true);
  token->check_login(credentials, uid);
  co_await impl->check_not_locked(token, uid, std::move(stop));
  co_return Unit{};
}

Task<Unit> TokenService::check_may_unblock(std::string token_id, uid_t uid, bool pinpad, std::stop_token stop) {
  const auto impl = impl_;
  const std::shared_ptr<Token> token = impl->require_token(token_id);
  const TokenInfo info = token->info();
  check_may_use(info.live_session_owner(), false, uid, true);
  if (impl->hooks_->pin_guard->puk_known_locked(token->pin_key()))
    throw Error(Errc::pin_locked,
                "an earlier pin.unblock found this card's PUK locked, or the module not configured to unblock "
                "(docs/pins.md); korttid does not try again until the card is taken out and put back");
  if (!pinpad) impl->hooks_->pin_guard->check_puk(token->pin_key(), uid);
  if (impl->options_.unblock_style != UnblockStyle::set_pin_unlogged) co_return Unit{};
  auto locked_now = [](Token& t) { return t.pin_locked_now(); };
  const bool locked = co_await impl->on_token(token, uid, std::move(stop), locked_now);
  if (!locked) throw Error(Errc::invalid_params, kPinNotLocked);
  co_return Unit{};
}

void TokenService::check_may_log_out(const std::string& token_id, uid_t uid) const {
  const TokenInfo info = impl_->require_token(token_id)->info();
  pkcs11::check_may_log_out(info.live_session_owner(), uid);
}

void TokenService::set_pin_counter(PinCounter counter) {
  if (impl_->started_) throw std::logic_error("set_pin_counter after start");
  impl_->hooks_->pin_counter = std::move(counter);
}

void TokenService::card_removed(const std::string& reader) {
  // The removal PC/SC saw ends the card's tokens here, not at the next scan:
  // a card put back before that scan has run (one waiting behind another
  // card's opening, or a module that cannot list its slots) would be the
  // same token to the scan, and keep the session that pulling the card
  // ends.
  std::vector<std::string> gone;
  for (const auto& [id, token] : impl_->tokens_)
    if (token->info().reader == reader) gone.push_back(id);
  for (const auto& id : gone) impl_->remove_token(id);
  // One still opening on this reader (or on one not known yet) is dropped
  // too: its sessions may be the pulled card's, and this card may be back
  // before the scan below lists the slot, which then opens it afresh.
  std::erase_if(impl_->opening_, [&](const Impl::Opening& o) {
    const std::optional<std::string> at = o.token->info().reader;
    return !at || *at == reader;
  });
  impl_->rescan({});
}

}  // namespace kortti::pkcs11
