#!/usr/bin/env bash
# The packages of scripts/package, installed, upgraded, removed and purged on
# this machine, as an admin would. It changes the machine (packages, the
# korttid user, /etc/korttid), so it runs only as root and when asked:
#   tests/package/install_test.sh --on-this-machine [DIST_DIR]
# CI runs it on its throw-away machine (scripts/test). Each check prints
# "ok" or "FAIL"; the exit status is 0 when all held, 1 otherwise.
set -uo pipefail
if [ "${1:-}" != --on-this-machine ] || [ "$(id -u)" -ne 0 ]; then
  echo "usage (as root, on a machine you can throw away): $0 --on-this-machine [DIST_DIR]" >&2
  exit 64
fi
dist=$(realpath "${2:-$(dirname "$0")/../../dist}")
work=$(mktemp -d)
failures=0
korttid_pid=
cleanup() {
  [ -n "$korttid_pid" ] && kill "$korttid_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

check() {  # check WHAT COMMAND...: ok when the command succeeds
  local what=$1
  shift
  if out=$("$@" 2>&1); then
    echo "ok    $what"
  else
    echo "FAIL  $what"
    printf '%s\n' "$out" | sed 's/^/      /' | head -20
    failures=$((failures + 1))
  fi
}
absent() { ! [ -e "$1" ]; }
debs=("$dist"/korttid_*.deb "$dist"/kortti_*.deb "$dist"/kortti-webeid_*.deb)
# "korttid --check-config" with these arguments exits STATUS and says TEXT.
check_config() {
  local status=$1 text=$2 out
  shift 2
  out=$(/usr/sbin/korttid --check-config "$@" 2>&1)
  [ $? -eq "$status" ] && grep -qF -- "$text" <<< "$out" || { echo "$out"; return 1; }
}
# The man page renders without a groff warning (zcat's failure counts).
man_page_clean() {
  local page=$1 text
  text=$(zcat "/usr/share/man/man${page##*.}/$page.gz") && [ -n "$text" ] &&
    [ -z "$(groff -man -ww -z -Tutf8 <<< "$text" 2>&1)" ]
}

echo "== install"
# Through apt, so that dependencies come as they would for an admin.
check "apt installs the three packages" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${debs[@]}"
check "korttid is installed" dpkg-query -W -f='${Status}' korttid
check "the service user exists (sysusers)" getent passwd korttid
check "the socket's group exists (sysusers)" getent group kortti
check "/var/lib/korttid belongs to korttid (tmpfiles)" test "$(stat -c %U /var/lib/korttid)" = korttid
check "the trust anchors' folder exists" test -d /etc/korttid/trust
check "the shipped configuration is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}' korttid | grep -q /etc/korttid/korttid.toml"
check "korttid --check-config accepts the shipped file" \
  check_config 0 "configuration OK: /etc/korttid/korttid.toml" --config /etc/korttid/korttid.toml
check "korttid --check-config reads the shipped file by default" check_config 0 "configuration OK: /etc/korttid/korttid.toml"
printf '[ipc]\nmax_mesage_bytes = 1\n' > "$work/bad.toml"
check "korttid --check-config refuses a misspelt key (78, with the right name)" \
  check_config 78 "did you mean ipc.max_message_bytes?" --config "$work/bad.toml"
check "the system units verify" systemd-analyze verify /lib/systemd/system/korttid.socket /lib/systemd/system/korttid.service
check "the user units verify" systemd-analyze verify /usr/lib/systemd/user/korttid-user.socket \
  /usr/lib/systemd/user/korttid-user.service /usr/lib/systemd/user/kortti-watch.service
for page in kortti.1 kortti-webeid.1 korttid.8 korttid.toml.5; do
  check "man page $page is installed and renders cleanly" man_page_clean "$page"
done
for manifest in /etc/chromium/native-messaging-hosts/eu.webeid.json \
  /usr/lib/mozilla/native-messaging-hosts/eu.webeid.json; do
  check "$manifest names the installed host" python3 -c \
    "import json, sys; m = json.load(open(sys.argv[1])); sys.exit(not (m['name'] == 'eu.webeid' and m['path'] == '/usr/bin/kortti-webeid' and m['type'] == 'stdio'))" "$manifest"
done
check "kortti-webeid runs and names the Web eID version it speaks" sh -c \
  "/usr/bin/kortti-webeid --version | grep -q 'Web eID 2\.'"
if [ -d /run/systemd/system ]; then
  check "under systemd, korttid.socket listens after the install" systemctl is-active --quiet korttid.socket
fi
check "the audit trail's logrotate rule is a conffile" sh -c \
  "dpkg-query -W -f='\${Conffiles}' korttid | grep -q /etc/logrotate.d/korttid"
if command -v logrotate > /dev/null; then
  check "logrotate reads the rule" logrotate --debug /etc/logrotate.d/korttid
fi
check "the user units are not enabled for every user" sh -c "! ls /etc/systemd/user/*/korttid-user.socket /etc/systemd/user/*/kortti-watch.service 2>/dev/null | grep -q ."

# The installed programs run: korttid serves a socket, kortti asks it.
printf '[ipc]\nsocket = "%s/k.sock"\n[pcsc]\nenabled = false\n[pkcs11]\nmodules = []\n' "$work" > "$work/k.toml"
/usr/sbin/korttid --config "$work/k.toml" > "$work/korttid.log" 2>&1 &
korttid_pid=$!
for _ in $(seq 50); do [ -S "$work/k.sock" ] && break; sleep 0.1; done
check "installed kortti reaches installed korttid" /usr/bin/kortti --socket "$work/k.sock" status
kill "$korttid_pid"
wait "$korttid_pid"
stopped=$?
korttid_pid=
check "korttid stops cleanly on SIGTERM" test "$stopped" -eq 0

# A tunnel's socket where docs/authentication.md puts it, with korttid run as
# the unit runs it: user korttid in group kortti (SupplementaryGroups=), and
# /run/korttid/tls made for it (RuntimeDirectory=).
tunnel_socket_as_the_unit_makes_it() {
  local dir=/run/korttid/tls conf=$work/tls/korttid.toml pid status=0
  grep -q '^RuntimeDirectory=korttid/tls$' /lib/systemd/system/korttid.service &&
    grep -q '^SupplementaryGroups=kortti$' /lib/systemd/system/korttid.service || return 1
  chmod 0755 "$work"  # the service user reads its configuration there
  install -d -m 0755 /run/korttid && install -d -o korttid -g korttid -m 0755 "$dir" && install -d -m 0755 "$work/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=upstream-ca -days 1 \
    -keyout /dev/null -out "$work/tls/ca.pem" 2> /dev/null || return 1
  printf '[ipc]\nsocket = "%s/main.sock"\nsocket_group = "kortti"\n[pcsc]\nenabled = false\n[pkcs11]\nmodules = []\n[tls]\nenabled = true\n[[tls.upstream]]\nname = "sso"\nconnect = "127.0.0.1:9"\nca_file = "%s/tls/ca.pem"\nlisten = "%s/sso.sock"\n' \
    "$dir" "$work" "$dir" > "$conf"
  setpriv --reuid=korttid --regid=korttid --groups=kortti /usr/sbin/korttid --config "$conf" > "$work/tls/korttid.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do [ -S "$dir/sso.sock" ] && break; sleep 0.1; done
  [ "$(stat -c '%G %a' "$dir/sso.sock" 2> /dev/null)" = "kortti 660" ] || status=1
  kill "$pid" && wait "$pid" || status=1
  [ $status -eq 0 ] || cat "$work/tls/korttid.log"
  rm -rf "$dir"
  return $status
}
check "a tunnel's socket in /run/korttid/tls is made with group kortti by korttid as the unit runs it" \
  tunnel_socket_as_the_unit_makes_it

echo "== upgrade"
since=
[ -d /run/systemd/system ] && since=$(systemctl show -P ActiveEnterTimestampMonotonic korttid.socket)
echo "# changed by the admin" >> /etc/korttid/korttid.toml
# The next version of the same package, as an upgrade would bring it.
for deb in "${debs[@]}"; do
  dpkg-deb -R "$deb" "$work/next"
  sed -i 's/^Version: \(.*\)$/Version: \1+upgrade1/' "$work/next/DEBIAN/control"
  dpkg-deb -b "$work/next" "$work/$(basename "$deb" .deb)+upgrade1.deb" > /dev/null
  rm -rf "$work/next"
done
check "the upgrade installs" env DEBIAN_FRONTEND=noninteractive dpkg -i "$work"/*+upgrade1.deb
check "the upgraded version is installed" sh -c "dpkg-query -W -f='\${Version}' korttid | grep -q upgrade1"
check "the admin's change to the configuration is kept" grep -q "changed by the admin" /etc/korttid/korttid.toml
# The socket stays through an upgrade: the maintainer scripts restart the
# service and never the socket (debian/rules), and under systemd the socket
# unit is the same before and after.
socket_never_restarted() {
  local postinst=/var/lib/dpkg/info/korttid.postinst
  grep -q "invoke .*restart.*korttid.service\|_dh_action=restart" "$postinst" &&
    ! grep -E 'invoke (restart|\$_dh_action) .*korttid\.socket' "$postinst"
}
check "the upgrade's scripts restart the service, never the socket" socket_never_restarted
if [ -n "$since" ]; then
  check "under systemd, the socket listened throughout the upgrade" \
    test "$(systemctl show -P ActiveEnterTimestampMonotonic korttid.socket)" = "$since"
else
  echo "skip  the socket through a live upgrade: systemd is not running here (the scripts are checked above)"
fi

echo "== remove and purge"
dpkg-query -L korttid kortti kortti-webeid | sort -u > "$work/files"
check "dpkg -r removes the three" dpkg -r korttid kortti kortti-webeid
check "the programs are gone" sh -c "! [ -e /usr/sbin/korttid ] && ! [ -e /usr/bin/kortti ]"
check "the configuration stays after remove" test -f /etc/korttid/korttid.toml
# An audit trail as the service leaves it (systemd's LogsDirectory=).
mkdir -p /var/log/korttid && echo '{"seq":1}' >> /var/log/korttid/audit.log
check "dpkg -P purges the three" dpkg -P korttid kortti kortti-webeid
check "the configuration is gone after purge" absent /etc/korttid/korttid.toml
check "the state is gone after purge" absent /var/lib/korttid
check "the audit trail stays after purge" test -s /var/log/korttid/audit.log
rm -rf /var/log/korttid
# Folders may stay (shared ones, and /lib itself on a merged /usr); files not.
left=$(while read -r f; do if [ -f "$f" ] || { [ -L "$f" ] && ! [ -d "$f" ]; }; then echo "$f"; fi; done < "$work/files")
check "no file of any of the packages is left" test -z "$left"
[ -n "$left" ] && echo "$left" | sed 's/^/      left: /'

echo "== $failures failed"
[ "$failures" -eq 0 ]
