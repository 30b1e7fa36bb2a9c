//! What a connector's receipt for a call signs ([`crate::wire::CallReceipt`]): the tenant,
//! the runtime's call id, and the place and hash of the call's record in the connector's
//! own audit log. One module, so that signer and verifier cannot drift apart.
//!
//! The receipts of the calls whose records are written together are signed once: the
//! signature covers the root of a Merkle tree (RFC 9162, section 2.1, with SHA-256) over
//! their messages, and each receipt carries its leaf's index, the tree's size and the
//! inclusion path. A receipt written alone signs its message itself, as the first receipts
//! did, and carries no path.

use aws_lc_rs::digest::{Context, SHA256};

/// The longest inclusion path accepted: a tree of 2^32 leaves.
pub const MAX_PATH: usize = 32;

/// A SHA-256 hash in the tree.
pub type Hash = [u8; 32];

/// The message of a receipt: its leaf in a batch, or the signed bytes of a lone receipt.
pub fn message(tenant: &str, call_id: u64, seq: u64, record_hash: &str) -> Vec<u8> {
    format!("mcp-edge receipt v1\n{tenant}\n{call_id}\n{seq}\n{record_hash}\n").into_bytes()
}

/// What the signature of a batch of `count` receipts with this Merkle `root` covers.
pub fn batch_message(count: u32, root: &Hash) -> Vec<u8> {
    format!(
        "mcp-edge receipt batch v1\n{count}\n{}\n",
        hex::encode(root)
    )
    .into_bytes()
}

/// The leaf hash of a message: SHA-256(0x00 || message).
pub fn leaf_hash(message: &[u8]) -> Hash {
    hash(&[&[0], message])
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    hash(&[&[1], left, right])
}

fn hash(parts: &[&[u8]]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The Merkle tree over a batch's leaf hashes, every level kept, so that the root and all
/// the inclusion paths cost one hash per inner node (n - 1 in all) rather than a walk of
/// the tree per leaf.
///
/// RFC 9162 splits a tree of n leaves at the largest power of two below n; pairing each
/// level from the left and carrying an odd last node up unchanged builds the same tree.
#[derive(Debug, Clone)]
pub struct Tree {
    /// `levels[0]` are the leaves; the last level is the root alone.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// The tree over `leaves`; none for no leaves.
    pub fn new(leaves: Vec<Hash>) -> Option<Self> {
        if leaves.is_empty() {
            return None;
        }
        let mut levels = vec![leaves];
        while let Some(below) = levels.last().filter(|l| l.len() > 1) {
            // A pair hashes to its parent; an odd last node is carried up as it is.
            let above = below
                .chunks(2)
                .filter_map(|pair| pair.iter().copied().reduce(|l, r| node_hash(&l, &r)))
                .collect();
            levels.push(above);
        }
        Some(Self { levels })
    }

    /// How many leaves the tree has.
    pub fn len(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// Whether the tree has no leaves (never: [`Tree::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tree's root hash.
    pub fn root(&self) -> Hash {
        self.levels
            .last()
            .and_then(|top| top.first())
            .copied()
            .unwrap_or_default()
    }

    /// The inclusion path of leaf `index`, nearest sibling first (RFC 9162, 2.1.3.1);
    /// empty for a tree of one leaf or an index past the end.
    pub fn path(&self, index: usize) -> Vec<Hash> {
        if index >= self.len() {
            return Vec::new();
        }
        let mut path = Vec::new();
        let mut i = index;
        for level in &self.levels {
            // An odd last node has no sibling at this level: it is carried up as it is.
            if let Some(sibling) = level.get(i ^ 1) {
                path.push(*sibling);
            }
            i /= 2;
        }
        path
    }
}

/// The root that `leaf` at `index` of a tree of `count` leaves leads to along `path`
/// (RFC 9162, 2.1.3.2); none if the path cannot be one of such a tree.
pub fn root_from_path(leaf: Hash, index: u32, count: u32, path: &[Hash]) -> Option<Hash> {
    if index >= count || path.len() > MAX_PATH {
        return None;
    }
    let (mut f, mut s) = (index, count - 1);
    let mut r = leaf;
    for p in path {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

/// The bytes a receipt's signature must cover: its `message` when it was signed alone
/// (`count` 0 or 1, no path), else the batch message of the root its path leads to; none
/// when the path is not a valid one.
pub fn signed_bytes(message: &[u8], index: u32, count: u32, path: &[Hash]) -> Option<Vec<u8>> {
    if count <= 1 && path.is_empty() && index == 0 {
        return Some(message.to_vec());
    }
    let root = root_from_path(leaf_hash(message), index, count, path)?;
    Some(batch_message(count, &root))
}

/// A path as the wire carries it (bytes); none if a step is not 32 bytes or it is too long.
pub fn path_from_bytes(path: &[Vec<u8>]) -> Option<Vec<Hash>> {
    if path.len() > MAX_PATH {
        return None;
    }
    path.iter()
        .map(|p| Hash::try_from(p.as_slice()).ok())
        .collect()
}

/// A path as audit records keep it (lowercase hex).
pub fn path_to_hex(path: &[Hash]) -> Vec<String> {
    path.iter().map(hex::encode).collect()
}

/// A path kept as hex; none if a step is not 64 hex digits or it is too long.
pub fn path_from_hex(path: &[String]) -> Option<Vec<Hash>> {
    if path.len() > MAX_PATH {
        return None;
    }
    path.iter()
        .map(|p| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(p, &mut out).ok()?;
            Some(out)
        })
        .collect()
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

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&message("acme", i as u64, i as u64, "h")))
            .collect()
    }

    /// RFC 9162's recursive definition (2.1.1, 2.1.3.1), word for word: the reference the
    /// level-by-level [`Tree`] is checked against.
    fn rfc_root(leaves: &[Hash]) -> Hash {
        match leaves {
            [one] => *one,
            _ => {
                let (l, r) = leaves.split_at(rfc_split(leaves.len()));
                node_hash(&rfc_root(l), &rfc_root(r))
            }
        }
    }

    fn rfc_path(leaves: &[Hash], index: usize) -> Vec<Hash> {
        if leaves.len() < 2 {
            return Vec::new();
        }
        let k = rfc_split(leaves.len());
        let (l, r) = leaves.split_at(k);
        let (mut path, sibling) = if index < k {
            (rfc_path(l, index), rfc_root(r))
        } else {
            (rfc_path(r, index - k), rfc_root(l))
        };
        path.push(sibling);
        path
    }

    /// The largest power of two smaller than `n` (n ≥ 2).
    fn rfc_split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    #[test]
    fn the_tree_is_the_rfcs_tree() {
        for n in 1..=70usize {
            let ls = leaves(n);
            let tree = Tree::new(ls.clone()).unwrap();
            assert_eq!(tree.len(), n);
            assert_eq!(tree.root(), rfc_root(&ls), "root of {n}");
            for i in 0..n {
                assert_eq!(tree.path(i), rfc_path(&ls, i), "path of {i} in {n}");
            }
            assert!(tree.path(n).is_empty());
        }
        assert!(Tree::new(Vec::new()).is_none());
    }

    /// Every leaf of every tree size up to 70 proves its way to the root, and from no other
    /// place (the size is bound by the batch message, which names it).
    #[test]
    fn every_leaf_proves_its_inclusion_and_nothing_else() {
        for n in 1..=70usize {
            let ls = leaves(n);
            let tree = Tree::new(ls.clone()).unwrap();
            let top = tree.root();
            for (i, leaf) in ls.iter().enumerate() {
                let path = tree.path(i);
                assert!(path.len() <= MAX_PATH);
                let (i, n32) = (i as u32, n as u32);
                assert_eq!(root_from_path(*leaf, i, n32, &path), Some(top), "{n} {i}");
                if n > 1 {
                    let other = (i + 1) % n32;
                    assert_ne!(root_from_path(*leaf, other, n32, &path), Some(top));
                }
            }
        }
    }

    /// RFC 9162's leaf and node prefixes: a leaf cannot pass for an inner node.
    #[test]
    fn a_two_leaf_tree_hashes_as_the_rfc_says() {
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        assert_eq!(a, hash(&[&[0], b"a"]));
        assert_eq!(Tree::new(vec![a, b]).unwrap().root(), hash(&[&[1], &a, &b]));
    }

    #[test]
    fn a_lone_receipt_signs_its_message_and_a_batch_signs_the_root() {
        let m = message("acme", 1, 9, "ab");
        assert_eq!(signed_bytes(&m, 0, 1, &[]), Some(m.clone()));
        assert_eq!(signed_bytes(&m, 0, 0, &[]), Some(m.clone()));
        let tree = Tree::new(vec![leaf_hash(&m), leaf_hash(b"other")]).unwrap();
        let path = tree.path(0);
        let root = tree.root();
        assert_eq!(signed_bytes(&m, 0, 2, &path), Some(batch_message(2, &root)));
        // A path that leads nowhere, or a place past the end, is no receipt.
        assert_eq!(signed_bytes(&m, 2, 2, &path), None);
        assert_eq!(signed_bytes(&m, 0, 1, &path), None);
        assert_eq!(signed_bytes(&m, 0, 2, &[path[0]; 33]), None);
    }

    #[test]
    fn paths_survive_hex_and_bytes_and_reject_anything_else() {
        let path = Tree::new(leaves(5)).unwrap().path(4);
        let hexed = path_to_hex(&path);
        assert_eq!(path_from_hex(&hexed), Some(path.clone()));
        let bytes: Vec<Vec<u8>> = path.iter().map(|h| h.to_vec()).collect();
        assert_eq!(path_from_bytes(&bytes), Some(path));
        assert_eq!(path_from_hex(&["zz".repeat(32)]), None);
        assert_eq!(path_from_hex(&["ab".into()]), None);
        assert_eq!(path_from_bytes(&[vec![0; 31]]), None);
        assert_eq!(path_from_bytes(&vec![vec![0; 32]; MAX_PATH + 1]), None);
    }
}
