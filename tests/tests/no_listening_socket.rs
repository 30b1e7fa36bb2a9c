//! Invariant 1: the running connector holds no listening socket, TCP or UDP, on any
//! address. Read from /proc (the kernel's own tables), cross-checked with `ss`.

use std::collections::HashSet;

use anyhow::Result;
use e2e::{Connector, Runtime, run};

/// Socket inodes of a process.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// One row of /proc/net/{tcp,udp}[6].
#[derive(Debug)]
struct Row {
    table: &'static str,
    remote_port: u16,
    state: String,
    inode: u64,
}

fn rows(pid: u32) -> Vec<Row> {
    let mut out = Vec::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(state), Some(inode)) = (f.get(2), f.get(3), f.get(9)) else {
                continue;
            };
            let port = remote
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
                .unwrap_or(0);
            out.push(Row {
                table,
                remote_port: port,
                state: (*state).to_owned(),
                inode: inode.parse().unwrap_or(0),
            });
        }
    }
    out
}

#[test]
fn running_connector_holds_no_listening_socket() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    c.start(&rt, &[])?;
    assert!(rt.ping(&c.id).is_ok());
    let pid = c.process.as_ref().map(|p| p.pid()).unwrap_or(0);

    let ours = socket_inodes(pid);
    let mine: Vec<Row> = rows(pid)
        .into_iter()
        .filter(|r| ours.contains(&r.inode))
        .collect();
    println!("connector pid {pid} sockets: {mine:?}");

    // TCP state 0A is LISTEN; a UDP socket with no remote port is unconnected, which a port
    // scan and `ss -l` report as open.
    let listening: Vec<&Row> = mine
        .iter()
        .filter(|r| {
            (r.table.starts_with("tcp") && r.state == "0A")
                || (r.table.starts_with("udp") && r.remote_port == 0)
        })
        .collect();
    assert!(
        listening.is_empty(),
        "connector has listening sockets: {listening:?}"
    );

    // And we were looking at the right thing: the tunnel is a UDP flow connected to the runtime.
    assert!(
        mine.iter()
            .any(|r| r.table.starts_with("udp") && r.remote_port == rt.quic_port),
        "no connected UDP socket to the runtime's port {}: {mine:?}",
        rt.quic_port
    );

    // Cross-check with ss, as a reviewer would run it.
    let ss = run(std::process::Command::new("ss").args(["-H", "-l", "-n", "-t", "-u", "-p"]));
    let listed = String::from_utf8_lossy(&ss.stdout);
    println!("ss -lntup:\n{listed}");
    assert!(
        !listed.contains(&format!("pid={pid},")),
        "ss lists a listening socket of the connector"
    );
    Ok(())
}
