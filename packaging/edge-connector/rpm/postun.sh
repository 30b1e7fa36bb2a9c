# edge-connector %postun. Erase keeps /var/lib/edge-connector (identity, vault), the vault
# key and the user, as RPM packages do with data; edited configuration is kept as .rpmsave.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
