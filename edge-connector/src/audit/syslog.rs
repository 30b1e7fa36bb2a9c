//! The `[audit.syslog]` section and the message each record becomes: RFC 5424, framed by
//! octet counting (RFC 6587 3.4.1, as RFC 5425 requires over TLS).
//!
//! ```text
//! 153 <86>1 2026-12-06T23:00:00.123456Z host edge-connector 4242 call [edgeAudit@32473 seq="7" hash="ab12…"] {"seq":7,…}
//! ```
//! - PRI: the configured facility (`authpriv`, default, or `local0`); severity `notice`
//!   for a refused call or a call that did not end `ok`, else `info`.
//! - TIMESTAMP: the record's own time, cut to microseconds (RFC 5424 allows six digits).
//! - MSGID: the record's kind; STRUCTURED-DATA: its sequence number and hash (32473 is the
//!   documentation enterprise number of RFC 5612); MSG: the record's exact JSON line, so
//!   a collector can check each hash itself.

use std::path::PathBuf;

use serde::Deserialize;

/// The syslog facility of the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    /// Security/authorization messages, kept private (10).
    #[default]
    Authpriv,
    /// Local use 0 (16).
    Local0,
}

impl Facility {
    fn code(self) -> u8 {
        match self {
            Self::Authpriv => 10,
            Self::Local0 => 16,
        }
    }
}

/// Severity `notice` (5): a refusal or a failed call.
const NOTICE: u8 = 5;
/// Severity `informational` (6).
const INFO: u8 = 6;
/// The SD-ID of the element that carries the record's position in the chain.
const SD_ID: &str = "edgeAudit@32473";
/// RFC 5424 field limits.
const MAX_HOSTNAME: usize = 255;
const MAX_APP_NAME: usize = 48;
const MAX_MSGID: usize = 32;

fn default_queue() -> usize {
    10_000
}

fn default_app_name() -> String {
    "edge-connector".to_owned()
}

/// The `[audit.syslog]` section: where each record is forwarded as it is written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// The collector, `host:port` (TLS, the server name is the host).
    pub address: String,
    /// PEM roots trusted for the collector, besides the system's.
    pub ca_bundle: PathBuf,
    /// A client certificate chain (PEM), for collectors that require mutual TLS.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Records kept while the collector is away; past it the oldest are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// APP-NAME of the messages.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// The facility of the messages.
    #[serde(default)]
    pub facility: Facility,
}

impl SyslogConfig {
    /// The host and port of `address`, if it is `host:port` (IPv6 in brackets).
    pub fn host_port(&self) -> Option<(&str, u16)> {
        let (host, port) = self.address.rsplit_once(':')?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
        (!host.is_empty() && !host.contains(['/', ' ', '[', ']'])).then_some((host, port))
    }

    /// The section, or what is wrong with it.
    pub fn checked(self) -> Result<Self, String> {
        let Some((host, _)) = self.host_port() else {
            return Err(format!(
                "audit.syslog.address {:?} must be host:port (for example collector.corp:6514)",
                self.address
            ));
        };
        if rustls_pki_types::ServerName::try_from(host).is_err() {
            return Err(format!(
                "audit.syslog.address: {host:?} is not a host name or address"
            ));
        }
        if !(1..=1_000_000).contains(&self.queue) {
            return Err("audit.syslog.queue must be between 1 and 1000000".to_owned());
        }
        if self.app_name.is_empty()
            || self.app_name.len() > MAX_APP_NAME
            || !self.app_name.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(
                "audit.syslog.app_name must be 1 to 48 printable ASCII characters, no spaces"
                    .to_owned(),
            );
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(
                "audit.syslog: client_cert and client_key go together (mutual TLS)".to_owned(),
            );
        }
        Ok(self)
    }
}

/// What a message needs besides the record.
#[derive(Debug, Clone)]
pub struct Header {
    /// The facility.
    pub facility: Facility,
    /// HOSTNAME.
    pub hostname: String,
    /// APP-NAME.
    pub app_name: String,
    /// PROCID.
    pub procid: u32,
}

impl Header {
    /// The header of this process on this machine.
    pub fn local(config: &SyslogConfig) -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        Self {
            facility: config.facility,
            hostname: field(hostname.trim(), MAX_HOSTNAME),
            app_name: field(&config.app_name, MAX_APP_NAME),
            procid: std::process::id(),
        }
    }
}

/// `text` as a header field: printable ASCII without spaces, at most `max` bytes, `-`
/// when nothing is left.
fn field(text: &str, max: usize) -> String {
    let kept: String = text
        .chars()
        .filter(char::is_ascii_graphic)
        .take(max)
        .collect();
    if kept.is_empty() {
        "-".to_owned()
    } else {
        kept
    }
}

/// The fields of a record the header uses.
#[derive(Deserialize)]
struct Fields {
    seq: u64,
    ts: String,
    kind: String,
    hash: String,
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    result: Option<String>,
}

/// `ts` (RFC 3339) in UTC with at most six fractional digits, `-` if it does not parse.
fn timestamp(ts: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(t) = time::OffsetDateTime::parse(ts, &Rfc3339) else {
        return "-".to_owned();
    };
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The RFC 5424 message of the record `line` (one NDJSON line, without its newline), or
/// `None` if the line is not a record.
pub fn message(header: &Header, line: &[u8]) -> Option<Vec<u8>> {
    let f: Fields = serde_json::from_slice(line).ok()?;
    let failed =
        f.decision.as_deref() == Some("deny") || f.result.as_deref().is_some_and(|r| r != "ok");
    let severity = if failed { NOTICE } else { INFO };
    let pri = header.facility.code() * 8 + severity;
    // SD-PARAM values escape '"', '\' and ']'; a hash is hex, but the line is not ours to trust.
    let hash: String = f.hash.chars().filter(char::is_ascii_hexdigit).collect();
    let mut msg = format!(
        "<{pri}>1 {} {} {} {} {} [{SD_ID} seq=\"{}\" hash=\"{hash}\"] ",
        timestamp(&f.ts),
        header.hostname,
        header.app_name,
        header.procid,
        field(&f.kind, MAX_MSGID),
        f.seq,
    )
    .into_bytes();
    msg.extend_from_slice(line);
    Some(msg)
}

/// `msg` framed by octet counting: `LEN SP MSG`.
pub fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(facility: Facility) -> Header {
        Header {
            facility,
            hostname: "edge1.corp".into(),
            app_name: "edge-connector".into(),
            procid: 4242,
        }
    }

    const CALL_DENIED: &str = r#"{"seq":7,"ts":"2026-12-06T23:00:00.123456789Z","prev":"00","kind":"call","call_id":3,"decision":"deny","hash":"ab12"}"#;

    #[test]
    fn a_record_becomes_one_rfc5424_message_carrying_its_exact_line() {
        let m = message(&header(Facility::Authpriv), CALL_DENIED.as_bytes()).unwrap();
        let expected = format!(
            "<85>1 2026-12-06T23:00:00.123456Z edge1.corp edge-connector 4242 call [edgeAudit@32473 seq=\"7\" hash=\"ab12\"] {CALL_DENIED}"
        );
        assert_eq!(String::from_utf8(m).unwrap(), expected);
    }

    #[test]
    fn pri_is_facility_times_eight_plus_notice_for_refusals_and_failures_else_info() {
        let pri = |facility, line: &str| {
            let m = message(&header(facility), line.as_bytes()).unwrap();
            let s = String::from_utf8(m).unwrap();
            s[1..s.find('>').unwrap()].parse::<u8>().unwrap()
        };
        let ok =
            r#"{"seq":1,"ts":"2026-12-06T23:00:00Z","kind":"outcome","result":"ok","hash":"01"}"#;
        let failed = r#"{"seq":2,"ts":"2026-12-06T23:00:00Z","kind":"outcome","result":"upstream_error","hash":"02"}"#;
        let seal = r#"{"seq":3,"ts":"2026-12-06T23:00:00Z","kind":"seal","hash":"03"}"#;
        assert_eq!(pri(Facility::Authpriv, ok), 86);
        assert_eq!(pri(Facility::Authpriv, failed), 85);
        assert_eq!(pri(Facility::Authpriv, CALL_DENIED), 85);
        assert_eq!(pri(Facility::Authpriv, seal), 86);
        assert_eq!(pri(Facility::Local0, ok), 134);
        assert_eq!(pri(Facility::Local0, CALL_DENIED), 133);
    }

    #[test]
    fn octet_counting_prefixes_the_byte_length_and_a_space() {
        assert_eq!(frame(b"<86>1 x"), b"7 <86>1 x");
        let utf8 = "é".as_bytes();
        assert_eq!(frame(utf8), b"2 \xc3\xa9");
    }

    #[test]
    fn a_line_that_is_not_a_record_makes_no_message() {
        assert!(message(&header(Facility::Authpriv), b"not json").is_none());
    }

    #[test]
    fn the_section_refuses_addresses_bounds_and_names_that_cannot_work() {
        let base = SyslogConfig {
            address: "collector.corp:6514".into(),
            ca_bundle: "/ca.pem".into(),
            client_cert: None,
            client_key: None,
            queue: 10,
            app_name: "edge-connector".into(),
            facility: Facility::Authpriv,
        };
        assert!(base.clone().checked().is_ok());
        let v6 = SyslogConfig {
            address: "[::1]:6514".into(),
            ..base.clone()
        };
        assert_eq!(v6.host_port(), Some(("::1", 6514)));
        for address in ["collector.corp", "collector.corp:0", ":6514", "a b:1"] {
            let c = SyslogConfig {
                address: address.into(),
                ..base.clone()
            };
            assert!(c.checked().is_err(), "{address}");
        }
        let c = SyslogConfig {
            queue: 0,
            ..base.clone()
        };
        assert!(c.checked().is_err());
        let c = SyslogConfig {
            app_name: "edge connector".into(),
            ..base.clone()
        };
        assert!(c.checked().is_err());
        let c = SyslogConfig {
            client_cert: Some("/c.pem".into()),
            ..base
        };
        assert!(c.checked().unwrap_err().contains("client_key"));
    }
}
