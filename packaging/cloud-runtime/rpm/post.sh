# cloud-runtime %post ($1: 1 install, 2 upgrade). Idempotent; never starts the service:
# it runs only once `cloud-runtime init` has made the data directory.
install -d -m 0700 -o cloud-runtime -g cloud-runtime /var/lib/cloud-runtime
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
	systemctl enable cloud-runtime.service >/dev/null 2>&1 || :
	echo "cloud-runtime: installed, not initialised yet. Make its data directory:"
	echo "  sudo -u cloud-runtime cloud-runtime init --data-dir /var/lib/cloud-runtime --hostname runtime.example.com"
	echo "then: systemctl start cloud-runtime (settings: /etc/cloud-runtime/cloud-runtime.env)"
elif [ -d /run/systemd/system ]; then
	systemctl try-restart cloud-runtime.service >/dev/null 2>&1 || :
fi
exit 0
