//! The PROXY protocol (versions 1 and 2, as HAProxy specifies them): the header a TCP load
//! balancer sends before the client's bytes, naming the client's address. Read only from
//! trusted proxies, and only when the first byte announces it; a TLS ClientHello starts
//! with 0x16, so a proxy that sends no header is served as is.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The version 2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 line, `\r\n` included.
const V1_MAX: usize = 107;
/// The most address and TLV bytes accepted after a version 2 header.
const V2_MAX_BODY: usize = 512;

/// A PROXY header that cannot be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProxyHeaderError {
    /// Not a well-formed header.
    #[error("malformed PROXY protocol header")]
    Malformed,
    /// The connection ended or failed inside the header.
    #[error("connection ended inside the PROXY protocol header")]
    Truncated,
}

/// Reads a PROXY header if the stream starts with one: the client's address it names, or
/// `None` when there is no header or it names none (`LOCAL`, `UNKNOWN`, not TCP).
pub async fn read(tcp: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut first = [0u8; 1];
    match tcp.peek(&mut first).await {
        Ok(1) => {}
        _ => return Err(ProxyHeaderError::Truncated),
    }
    match first {
        [b'P'] => {
            let mut line = Vec::with_capacity(V1_MAX);
            while !line.ends_with(b"\r\n") {
                if line.len() >= V1_MAX {
                    return Err(ProxyHeaderError::Malformed);
                }
                let b = tcp
                    .read_u8()
                    .await
                    .map_err(|_| ProxyHeaderError::Truncated)?;
                line.push(b);
            }
            parse_v1(&line)
        }
        [b'\r'] => {
            let mut head = [0u8; 16];
            tcp.read_exact(&mut head)
                .await
                .map_err(|_| ProxyHeaderError::Truncated)?;
            let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
            if len > V2_MAX_BODY {
                return Err(ProxyHeaderError::Malformed);
            }
            let mut body = vec![0u8; len];
            tcp.read_exact(&mut body)
                .await
                .map_err(|_| ProxyHeaderError::Truncated)?;
            parse_v2(&head, &body)
        }
        _ => Ok(None),
    }
}

/// Parses a version 1 line (`PROXY TCP4 src dst sport dport\r\n`).
pub fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let bad = ProxyHeaderError::Malformed;
    let text = std::str::from_utf8(line).map_err(|_| bad.clone())?;
    let text = text.strip_suffix("\r\n").ok_or(bad.clone())?;
    let mut parts = text.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(bad);
    }
    let family = parts.next().ok_or(bad.clone())?;
    if family == "UNKNOWN" {
        return Ok(None);
    }
    let fields: Vec<&str> = parts.collect();
    let [src, _dst, sport, _dport] = fields.as_slice() else {
        return Err(bad);
    };
    let ip: IpAddr = match family {
        "TCP4" => IpAddr::V4(src.parse::<Ipv4Addr>().map_err(|_| bad.clone())?),
        "TCP6" => IpAddr::V6(src.parse::<Ipv6Addr>().map_err(|_| bad.clone())?),
        _ => return Err(bad),
    };
    let port = if !sport.is_empty() && sport.bytes().all(|b| b.is_ascii_digit()) {
        sport.parse::<u16>().map_err(|_| bad.clone())?
    } else {
        return Err(bad);
    };
    Ok(Some(SocketAddr::new(ip, port)))
}

/// Parses a version 2 header (16 bytes) and what follows it (`len` bytes).
pub fn parse_v2(head: &[u8; 16], body: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let bad = ProxyHeaderError::Malformed;
    if head[..12] != V2_SIGNATURE {
        return Err(bad);
    }
    match head[12] {
        0x20 => return Ok(None), // LOCAL: the proxy's own connection (health checks)
        0x21 => {}
        _ => return Err(bad),
    }
    // Source and destination addresses, then source and destination ports.
    let (ip, port_at, block) = match head[13] {
        0x11 => {
            let a: [u8; 4] = body
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or(bad.clone())?;
            (IpAddr::from(a), 8, 12)
        }
        0x21 => {
            let a: [u8; 16] = body
                .get(..16)
                .and_then(|s| s.try_into().ok())
                .ok_or(bad.clone())?;
            (IpAddr::from(a), 32, 36)
        }
        // UNSPEC, UDP, unix sockets: no TCP client address to speak of.
        _ => return Ok(None),
    };
    if body.len() < block {
        return Err(bad);
    }
    let port = body
        .get(port_at..port_at + 2)
        .and_then(|p| p.try_into().ok())
        .map(u16::from_be_bytes)
        .ok_or(bad)?;
    Ok(Some(SocketAddr::new(ip, port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<Option<SocketAddr>, ProxyHeaderError>;

    #[test]
    fn version_1_lines() {
        let ok = |s: &str| Ok(Some(s.parse::<SocketAddr>().unwrap()));
        let table: &[(&str, Parsed)] = &[
            (
                "PROXY TCP4 198.51.100.1 10.0.0.1 51000 443\r\n",
                ok("198.51.100.1:51000"),
            ),
            (
                "PROXY TCP6 2001:db8::1 2001:db8::2 51000 443\r\n",
                ok("[2001:db8::1]:51000"),
            ),
            ("PROXY UNKNOWN\r\n", Ok(None)),
            ("PROXY UNKNOWN 1 2 3 4\r\n", Ok(None)),
            (
                "PROXY TCP4 198.51.100.1 10.0.0.1 51000 443\n",
                Err(ProxyHeaderError::Malformed),
            ),
            (
                "PROXY TCP4 2001:db8::1 10.0.0.1 51000 443\r\n",
                Err(ProxyHeaderError::Malformed),
            ),
            (
                "PROXY TCP6 198.51.100.1 10.0.0.1 51000 443\r\n",
                Err(ProxyHeaderError::Malformed),
            ),
            (
                "PROXY TCP4 198.51.100.1 10.0.0.1 +1 443\r\n",
                Err(ProxyHeaderError::Malformed),
            ),
            (
                "PROXY TCP4 198.51.100.1 10.0.0.1 70000 443\r\n",
                Err(ProxyHeaderError::Malformed),
            ),
            (
                "PROXY TCP4 198.51.100.1  10.0.0.1 1 443\r\n",
                Err(ProxyHeaderError::Malformed),
            ),
            (
                "PROXY TCP4 198.51.100.1 10.0.0.1 1\r\n",
                Err(ProxyHeaderError::Malformed),
            ),
            (
                "PROXY UDP4 198.51.100.1 10.0.0.1 1 2\r\n",
                Err(ProxyHeaderError::Malformed),
            ),
            ("GET / HTTP/1.1\r\n", Err(ProxyHeaderError::Malformed)),
        ];
        for (line, want) in table {
            assert_eq!(&parse_v1(line.as_bytes()), want, "{line:?}");
        }
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> ([u8; 16], Vec<u8>) {
        let mut head = [0u8; 16];
        head[..12].copy_from_slice(&V2_SIGNATURE);
        head[12] = command;
        head[13] = family;
        head[14..].copy_from_slice(&(body.len() as u16).to_be_bytes());
        (head, body.to_vec())
    }

    #[test]
    fn version_2_headers() {
        let tcp4 = [198, 51, 100, 1, 10, 0, 0, 1, 0xc7, 0x38, 1, 0xbb];
        let mut tcp6 = vec![0x20, 0x01, 0x0d, 0xb8];
        tcp6.extend([0; 11]);
        tcp6.push(1);
        tcp6.extend([0; 16]);
        tcp6.extend([0xc7, 0x38, 1, 0xbb]);
        let table: &[(u8, u8, &[u8], Parsed)] = &[
            (
                0x21,
                0x11,
                &tcp4,
                Ok(Some("198.51.100.1:51000".parse().unwrap())),
            ),
            (
                0x21,
                0x21,
                &tcp6,
                Ok(Some("[2001:db8::1]:51000".parse().unwrap())),
            ),
            (0x20, 0x11, &tcp4, Ok(None)),
            (0x21, 0x00, &[], Ok(None)),
            (0x21, 0x12, &tcp4, Ok(None)),
            (0x21, 0x11, &tcp4[..10], Err(ProxyHeaderError::Malformed)),
            (0x21, 0x21, &tcp4, Err(ProxyHeaderError::Malformed)),
            (0x22, 0x11, &tcp4, Err(ProxyHeaderError::Malformed)),
            (0x11, 0x11, &tcp4, Err(ProxyHeaderError::Malformed)),
        ];
        for (command, family, body, want) in table {
            let (head, body) = v2(*command, *family, body);
            assert_eq!(&parse_v2(&head, &body), want, "{command:#x} {family:#x}");
        }
        let (mut head, body) = v2(0x21, 0x11, &tcp4);
        head[0] = b'X';
        assert_eq!(parse_v2(&head, &body), Err(ProxyHeaderError::Malformed));
    }
}
