# edge-connector %pre: the service user, before the files that name it are installed.
getent group edge-connector >/dev/null || groupadd -r edge-connector
getent passwd edge-connector >/dev/null || \
	useradd -r -g edge-connector -d /var/lib/edge-connector -M -s /sbin/nologin \
		-c "mcp-edge connector" edge-connector
exit 0
