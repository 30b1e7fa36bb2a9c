# cloud-runtime %pre: the service user, before the files that name it are installed.
getent group cloud-runtime >/dev/null || groupadd -r cloud-runtime
getent passwd cloud-runtime >/dev/null || \
	useradd -r -g cloud-runtime -d /var/lib/cloud-runtime -M -s /sbin/nologin \
		-c "mcp-edge cloud runtime" cloud-runtime
exit 0
