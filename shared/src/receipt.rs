//! What a connector's receipt for a call signs ([`crate::wire::CallReceipt`]): the tenant,
//! the runtime's call id, and the place and hash of the call's outcome record in the
//! connector's own audit log. One function, so that signer and verifier cannot drift apart.

/// The signed message of a receipt.
pub fn message(tenant: &str, call_id: u64, seq: u64, record_hash: &str) -> Vec<u8> {
    format!("mcp-edge receipt v1\n{tenant}\n{call_id}\n{seq}\n{record_hash}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field is in the message, each on its own line, so that no two receipts sign
    /// the same bytes.
    #[test]
    fn the_message_names_tenant_call_and_place() {
        assert_eq!(
            message("acme", 7, 42, "ab12"),
            b"mcp-edge receipt v1\nacme\n7\n42\nab12\n".to_vec()
        );
        assert_ne!(message("acme", 17, 2, "x"), message("acme", 1, 72, "x"));
    }
}
