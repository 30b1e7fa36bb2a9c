# cloud-runtime %postun. Erase keeps /var/lib/cloud-runtime (CA, store, audit log) and the
# user, as RPM packages do with data; edited settings are kept as .rpmsave.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
