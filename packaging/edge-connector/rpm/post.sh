# edge-connector %post ($1: 1 install, 2 upgrade). Idempotent; never starts the service:
# it runs only once `edge-connector enroll` has written connector.toml.
install -d -m 0700 -o edge-connector -g edge-connector /var/lib/edge-connector
if [ ! -e /etc/edge-connector/vault.key ]; then
	(umask 077 && /usr/bin/edge-connector vault --config /etc/edge-connector/config.toml init >/dev/null)
fi
# systemd before 247 (RHEL 8 has 239) knows no LoadCredential=: there the service reads
# the key file itself, so the service user must own it.
systemd_version=$(systemctl --version 2>/dev/null | awk 'NR == 1 { print $2 }')
case "$systemd_version" in
'' | *[!0-9]*) ;;
*) if [ "$systemd_version" -lt 247 ]; then chown edge-connector:edge-connector /etc/edge-connector/vault.key; fi ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
	systemctl enable edge-connector.service >/dev/null 2>&1 || :
	echo "edge-connector: installed, not enrolled yet. Enroll with a join token from the runtime:"
	echo "  sudo -u edge-connector edge-connector enroll --config /etc/edge-connector/config.toml --runtime HOST:8443 --token TOKEN --ca-fingerprint sha256:HEX"
	echo "then: systemctl start edge-connector; check with: edge-connector doctor"
elif [ -d /run/systemd/system ]; then
	systemctl try-restart edge-connector.service >/dev/null 2>&1 || :
fi
exit 0
