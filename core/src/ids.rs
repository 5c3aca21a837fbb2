//! Stable identifiers derived from our own ids: vector-store point ids (UUIDs) and
//! NATS-safe keys (KV keys allow only `[-/_=.a-zA-Z0-9]`).

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Namespace for UUIDv5 point ids, so the same posting id always maps to the same point.
const POINT_NAMESPACE: Uuid = Uuid::from_u128(0x6a0b_5e1c_8f3d_4c2a_9e77_01d4_c3b2_a190);

/// The vector-store point id of one of our ids (a posting id or a subscription name).
pub fn point_id(id: &str) -> Uuid {
    Uuid::new_v5(&POINT_NAMESPACE, id.as_bytes())
}

/// A short hex digest, used for content hashes and NATS-safe keys.
pub fn digest_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let out = hasher.finalize();
    out[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A key that NATS KV accepts for any id (ids such as `greenhouse:acme:123` contain `:`).
pub fn kv_key(id: &str) -> String {
    digest_hex(&[id.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_ids_are_stable_and_distinct() {
        assert_eq!(point_id("greenhouse:acme:1"), point_id("greenhouse:acme:1"));
        assert_ne!(point_id("greenhouse:acme:1"), point_id("greenhouse:acme:2"));
    }

    #[test]
    fn digest_separates_parts() {
        // Length-prefixing keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(digest_hex(&[b"ab", b"c"]), digest_hex(&[b"a", b"bc"]));
        assert_eq!(kv_key("x:y").len(), 32);
        assert!(
            kv_key("greenhouse:acme:1")
                .chars()
                .all(|c| c.is_ascii_hexdigit())
        );
    }
}
