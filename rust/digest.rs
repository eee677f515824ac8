//! Digests: SHA-256 (the `sha2` crate picks SHA-NI / ARMv8 SHA at run time)
//! and BLAKE3. Hashes are written `<alg>:<lowercase hex>`.

use sha2::Digest as _;

pub type Digest = [u8; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Blake3,
}

impl HashAlg {
    pub fn parse(name: &str) -> Option<HashAlg> {
        match name {
            "sha256" => Some(HashAlg::Sha256),
            "blake3" => Some(HashAlg::Blake3),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Blake3 => "blake3",
        }
    }

    pub fn hash(self, data: &[u8]) -> Digest {
        match self {
            HashAlg::Sha256 => sha2::Sha256::digest(data).into(),
            HashAlg::Blake3 => *blake3::hash(data).as_bytes(),
        }
    }

    /// Hash of several byte strings concatenated, without copying them together.
    pub fn hash_parts(self, parts: &[&[u8]]) -> Digest {
        let mut h = self.hasher();
        for p in parts {
            h.update(p);
        }
        h.finish()
    }

    pub fn hasher(self) -> Hasher {
        match self {
            HashAlg::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlg::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
        }
    }
}

/// Incremental hasher over either algorithm.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Blake3(h) => {
                h.update(data);
            }
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => h.finalize().into(),
            Hasher::Blake3(h) => *h.finalize().as_bytes(),
        }
    }
}

pub(crate) const HEX: &[u8; 16] = b"0123456789abcdef";

pub fn hex(bytes: &[u8]) -> String {
    let mut s = Vec::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    // Only ASCII hex digits were written.
    String::from_utf8(s).unwrap_or_default()
}

pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    // Encode into a stack buffer and append once: per-byte pushes dominate otherwise.
    let mut buf = [0u8; 128];
    for chunk in bytes.chunks(64) {
        for (i, &b) in chunk.iter().enumerate() {
            buf[2 * i] = HEX[(b >> 4) as usize];
            buf[2 * i + 1] = HEX[(b & 0xf) as usize];
        }
        out.extend_from_slice(&buf[..2 * chunk.len()]);
    }
}

/// `<alg>:<hex>` as written in the stream.
pub fn tagged(alg: HashAlg, d: &Digest) -> String {
    format!("{}:{}", alg.name(), hex(d))
}

/// Parses `<alg>:<64 lowercase hex digits>`.
pub fn parse_tagged(s: &str) -> Option<(HashAlg, Digest)> {
    let (alg, hexpart) = s.split_once(':')?;
    let alg = HashAlg::parse(alg)?;
    Some((alg, parse_hex32(hexpart)?))
}

pub fn parse_hex32(s: &str) -> Option<Digest> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let nib = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        out[i] = (nib(pair[0])? << 4) | nib(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        assert_eq!(
            hex(&HashAlg::Sha256.hash(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&HashAlg::Blake3.hash(b"")),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(
            HashAlg::Sha256.hash_parts(&[b"a", b"bc"]),
            HashAlg::Sha256.hash(b"abc")
        );
    }

    #[test]
    fn tagged_round_trip_and_rejects_uppercase() {
        let d = HashAlg::Blake3.hash(b"x");
        assert_eq!(
            parse_tagged(&tagged(HashAlg::Blake3, &d)),
            Some((HashAlg::Blake3, d))
        );
        assert_eq!(
            parse_tagged(&tagged(HashAlg::Blake3, &d).to_uppercase()),
            None
        );
        assert_eq!(parse_tagged("md5:00"), None);
    }
}
