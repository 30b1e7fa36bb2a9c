//! "Nothing listens": the kernel's own socket tables (`/proc/<pid>/net/{tcp,udp}[6]`) for the
//! sockets held by running edge-connector processes. A TCP socket in LISTEN or a UDP socket
//! with no peer (which `ss -lu` and port scans report as open) is a failure: the connector
//! only ever holds outbound flows.

use std::collections::HashSet;
use std::path::Path;

use super::report::Check;

const ID: &str = "no-listening-socket";
/// TCP state LISTEN in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";

/// A socket that accepts traffic from anyone.
#[derive(Debug, PartialEq, Eq)]
pub struct Open {
    /// `tcp`, `tcp6`, `udp` or `udp6`.
    pub table: &'static str,
    /// Local address and port as the kernel prints them, decoded.
    pub local: String,
}

/// Checks every running edge-connector process except this one.
pub fn check(proc_root: &Path) -> Check {
    let pids = super::connector_pids(proc_root);
    if pids.is_empty() {
        return Check::pass(
            ID,
            "no edge-connector process is running, so none listens (run doctor again while the service runs to check it)",
        );
    }
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    let mut sockets = 0;
    for pid in &pids {
        let dir = proc_root.join(pid.to_string());
        let Some(inodes) = socket_inodes(&dir) else {
            unreadable.push(pid.to_string());
            continue;
        };
        sockets += inodes.len();
        for open in open_sockets(&dir, &inodes) {
            found.push(format!("process {pid}: {} {}", open.table, open.local));
        }
    }
    if !found.is_empty() {
        return Check::fail(
            ID,
            format!(
                "an edge-connector process accepts inbound traffic: {}",
                found.join("; ")
            ),
            "The connector must never listen. This is not a build from these packages, or a bug: stop it \
             (`systemctl stop edge-connector`), reinstall the package, and report the version (`edge-connector --version`).",
        );
    }
    if !unreadable.is_empty() {
        return Check::warn(
            ID,
            format!(
                "cannot read the sockets of edge-connector process(es) {}",
                unreadable.join(", ")
            ),
            "Run doctor as root (`sudo edge-connector doctor`) or as the service user to inspect the running service.",
        );
    }
    Check::pass(
        ID,
        format!(
            "{} edge-connector process(es) hold {sockets} socket(s), none listening (outbound flows only)",
            pids.len()
        ),
    )
}

/// The socket inodes among a process's file descriptors; `None` when not ours to read.
fn socket_inodes(pid_dir: &Path) -> Option<HashSet<u64>> {
    let fds = std::fs::read_dir(pid_dir.join("fd")).ok()?;
    Some(
        fds.flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .filter_map(|l| {
                l.to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()
            })
            .collect(),
    )
}

/// The process's sockets that are open to anyone, from its network namespace's tables.
fn open_sockets(pid_dir: &Path, inodes: &HashSet<u64>) -> Vec<Open> {
    let mut out = Vec::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let text = std::fs::read_to_string(pid_dir.join("net").join(table)).unwrap_or_default();
        out.extend(parse_table(table, &text, inodes));
    }
    out
}

/// Rows of one `/proc/net` table that belong to `inodes` and accept inbound traffic.
fn parse_table(table: &'static str, text: &str, inodes: &HashSet<u64>) -> Vec<Open> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state, inode) = (f.get(1)?, f.get(2)?, f.get(3)?, f.get(9)?);
            if !inodes.contains(&inode.parse().ok()?) {
                return None;
            }
            let remote_port = u16::from_str_radix(remote.rsplit(':').next()?, 16).ok()?;
            let open = if table.starts_with("tcp") {
                *state == TCP_LISTEN
            } else {
                remote_port == 0
            };
            open.then(|| Open {
                table,
                local: decode_addr(local),
            })
        })
        .collect()
}

/// `0100007F:1F90` → `127.0.0.1:8080` (IPv4 only; IPv6 rows are shown as the kernel prints
/// them, which is enough to find the socket).
fn decode_addr(raw: &str) -> String {
    let Some((ip, port)) = raw.split_once(':') else {
        return raw.to_owned();
    };
    let port = u16::from_str_radix(port, 16).map_or_else(|_| port.to_owned(), |p| p.to_string());
    match u32::from_str_radix(ip, 16) {
        Ok(v) if ip.len() == 8 => format!("{}:{port}", std::net::Ipv4Addr::from(v.swap_bytes())),
        _ => format!("[{ip}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_and_unconnected_udp_are_open_connected_flows_are_not() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1
   1: 0100007F:A000 0100007F:01BB 01 00000000:00000000 00:00000000 00000000     0        0 112 1
   2: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1";
        let udp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   5: 00000000:D431 0100007F:1151 01 00000000:00000000 00:00000000 00000000     0        0 113 2
   6: 00000000:D432 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 114 2";
        let ours: HashSet<u64> = [111, 112, 113, 114].into();
        assert_eq!(
            parse_table("tcp", tcp, &ours),
            [Open {
                table: "tcp",
                local: "127.0.0.1:8080".into()
            }]
        );
        assert_eq!(
            parse_table("udp", udp, &ours),
            [Open {
                table: "udp",
                local: "0.0.0.0:54322".into()
            }]
        );
    }
}
