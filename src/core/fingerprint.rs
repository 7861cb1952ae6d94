//! Content fingerprints: one algorithm, XXH3 with 128-bit output (the maintained `xxhash-rust`
//! crate), always written with its name in front (`xxh3:<32 hex digits>`), so that any tool can
//! recompute a digest and a reader knows which algorithm an older one used.
//!
//! Its users, each with its own definition of "content": a file's or a script's bytes
//! (`of_bytes`: a template database's checksum, the `system` fixture's version), the archive checksum
//! (`archive::checksum`: the schema entries, then every row in rowid order with its rowid), the
//! tenant fingerprint of a migration run (`migrate::content_hash`: statistics left out, rows
//! without their placement) and, through the same XXH3, PostgreSQL's schema fingerprint
//! (`migrate::postgres`, `pg-xxh3:`, over the md5 the server computes per table). Digests
//! written before stay readable by their own readers: archives' `lanes64:` (kept in
//! `archive::checksum`), migration manifests' untagged FNV (kept in `migrate`), and the untagged
//! 16-digit FNV of template sidecars and `system` versions (`fixture::checksum_matches`).

use rusqlite::types::ValueRef;
use xxhash_rust::xxh3::Xxh3;

/// The name written in front of every digest.
pub const TAG: &str = "xxh3";

/// A streaming fingerprint. Small inputs (a value's type byte and length) are gathered in a
/// buffer and handed to XXH3 a few KiB at a time: the digest is the same, the per-call cost
/// is paid once per buffer instead of once per value.
pub struct Fingerprint {
    h: Xxh3,
    buf: Vec<u8>,
}

const BUFFER: usize = 8192;

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint {
            h: Xxh3::new(),
            buf: Vec::with_capacity(BUFFER),
        }
    }
}

impl Fingerprint {
    pub fn update(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > BUFFER {
            self.h.update(&self.buf);
            self.buf.clear();
            if bytes.len() > BUFFER {
                self.h.update(bytes);
                return;
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    /// One SQLite value: a type byte (0 null, 1 integer, 2 real, 3 text, 4 blob), then an
    /// integer or a real as 8 little-endian bytes (a real's IEEE bits), a text or a blob as its
    /// length (8 little-endian bytes) and its bytes: no two different sequences of values give
    /// the same input.
    pub fn value(&mut self, v: ValueRef<'_>) {
        encode(v, |b| self.update(b));
    }

    /// `xxh3:<32 hex digits>`.
    pub fn finish(&self) -> String {
        let mut h = self.h.clone();
        h.update(&self.buf);
        format!("{TAG}:{:032x}", h.digest128())
    }
}

/// The encoding of `Fingerprint::value`, for any hasher (the legacy `lanes64` too).
pub fn encode(v: ValueRef<'_>, mut out: impl FnMut(&[u8])) {
    match v {
        ValueRef::Null => out(&[0]),
        ValueRef::Integer(i) => {
            out(&[1]);
            out(&i.to_le_bytes());
        }
        ValueRef::Real(f) => {
            out(&[2]);
            out(&f.to_bits().to_le_bytes());
        }
        ValueRef::Text(t) => {
            out(&[3]);
            out(&(t.len() as u64).to_le_bytes());
            out(t);
        }
        ValueRef::Blob(b) => {
            out(&[4]);
            out(&(b.len() as u64).to_le_bytes());
            out(b);
        }
    }
}

/// The fingerprint of a whole byte string (a file, a script): `xxh3:<32 hex digits>`, XXH3-128
/// of the bytes as they are.
pub fn of_bytes(bytes: &[u8]) -> String {
    format!("{TAG}:{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// The algorithm a tagged digest names (`xxh3` of `xxh3:…`), if it has a tag.
pub fn algorithm(digest: &str) -> Option<&str> {
    digest.split_once(':').map(|(a, _)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_string_digest_is_plain_xxh3_128() {
        assert_eq!(
            of_bytes(b"abc"),
            format!("xxh3:{:032x}", xxhash_rust::xxh3::xxh3_128(b"abc"))
        );
        assert_ne!(of_bytes(b"abc"), of_bytes(b"abd"));
    }

    #[test]
    fn values_are_delimited_and_typed() {
        let digest = |vals: &[ValueRef<'_>]| {
            let mut f = Fingerprint::default();
            for v in vals {
                f.value(*v);
            }
            f.finish()
        };
        let ab_c = digest(&[ValueRef::Text(b"ab"), ValueRef::Text(b"c")]);
        let a_bc = digest(&[ValueRef::Text(b"a"), ValueRef::Text(b"bc")]);
        assert_ne!(ab_c, a_bc);
        assert_ne!(
            digest(&[ValueRef::Integer(1)]),
            digest(&[ValueRef::Real(f64::from_bits(1))])
        );
        assert_ne!(
            digest(&[ValueRef::Text(b"x")]),
            digest(&[ValueRef::Blob(b"x")])
        );
        assert!(ab_c.starts_with("xxh3:") && ab_c.len() == 5 + 32, "{ab_c}");
        assert_eq!(algorithm(&ab_c), Some("xxh3"));
    }

    #[test]
    fn the_digest_is_plain_xxh3_128_of_the_encoding() {
        // Any tool can recompute it: XXH3-128 of the encoded bytes.
        let mut f = Fingerprint::default();
        f.value(ValueRef::Text(b"acme"));
        // Past the buffer, in pieces of every size: the same digest as in one piece.
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        f.value(ValueRef::Blob(&big));
        for i in 0..3000u32 {
            f.value(ValueRef::Integer(i64::from(i)));
        }
        let mut bytes = vec![3u8];
        bytes.extend_from_slice(&4u64.to_le_bytes());
        bytes.extend_from_slice(b"acme");
        bytes.push(4);
        bytes.extend_from_slice(&(big.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&big);
        for i in 0..3000i64 {
            bytes.push(1);
            bytes.extend_from_slice(&i.to_le_bytes());
        }
        assert_eq!(
            f.finish(),
            format!("xxh3:{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
        );
    }
}
