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
        if self == HashAlg::Sha256 {
            return sha256_parts(parts);
        }
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

/// SHA-256 of two messages, each given as parts. With the x86 SHA extensions
/// the two are hashed at once (see `shani`; `cargo bench --bench hash_pair`).
pub fn sha256_pair(a: &[&[u8]], b: &[&[u8]]) -> (Digest, Digest) {
    #[cfg(target_arch = "x86_64")]
    if let Some(pair) = crate::shani::sha256_x2(a, b) {
        return pair;
    }
    (HashAlg::Sha256.hash_parts(a), HashAlg::Sha256.hash_parts(b))
}

/// SHA-1 of a message given as parts (name-based UUIDs only).
pub fn sha1_parts(parts: &[&[u8]]) -> [u8; 20] {
    let mut state = SHA1_IV;
    let mut p = Padded::new(parts);
    let mut buf = [0u8; 64];
    while !p.done() {
        sha1::block_api::compress(&mut state, p.next_run(&mut buf));
    }
    be_bytes(&state)
}

/// SHA-1 of two messages, each given as parts; hashed at once like `sha256_pair`.
pub fn sha1_pair(a: &[&[u8]], b: &[&[u8]]) -> ([u8; 20], [u8; 20]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(pair) = crate::shani::sha1_x2(a, b) {
        return pair;
    }
    (sha1_parts(a), sha1_parts(b))
}

/// SHA-1 initial hash value (FIPS 180-4 §5.3.1).
pub(crate) const SHA1_IV: [u32; 5] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];

/// SHA-256 initial hash value (FIPS 180-4 §5.3.3).
pub(crate) const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 of `parts`, compressed straight from them: the chain links, Merkle
/// leaves and nodes are one or two blocks, where the streaming hasher's
/// buffering costs about as much as the compression itself.
fn sha256_parts(parts: &[&[u8]]) -> Digest {
    let mut p = Padded::new(parts);
    let mut state = SHA256_IV;
    let mut buf = [0u8; 64];
    while !p.done() {
        sha2::block_api::compress256(&mut state, p.next_run(&mut buf));
    }
    be_bytes(&state)
}

/// A message given as parts, read as padded 64-byte blocks (FIPS 180-4 §5.1.1).
pub(crate) struct Padded<'a> {
    parts: &'a [&'a [u8]],
    /// Where reading is: `parts[part][off..]`.
    part: usize,
    off: usize,
    /// The message's length in bytes.
    len: usize,
    /// Blocks read so far.
    next: usize,
    /// Blocks in all, padding included.
    blocks: usize,
}

impl<'a> Padded<'a> {
    pub(crate) fn new(parts: &'a [&'a [u8]]) -> Self {
        let len = parts.iter().map(|p| p.len()).sum::<usize>();
        Padded {
            parts,
            part: 0,
            off: 0,
            len,
            next: 0,
            blocks: (len + 9).div_ceil(64),
        }
    }

    pub(crate) fn done(&self) -> bool {
        self.next == self.blocks
    }

    /// The next blocks: read in place while the current part holds whole
    /// blocks, else one block assembled in `buf` (a block across parts, or
    /// the padding). Not to be called once `done`.
    pub(crate) fn next_run<'b>(&mut self, buf: &'b mut [u8; 64]) -> &'b [[u8; 64]]
    where
        'a: 'b,
    {
        // Past used-up and empty parts, so that a part's first block is read in place.
        while self
            .parts
            .get(self.part)
            .is_some_and(|p| self.off == p.len())
        {
            self.part += 1;
            self.off = 0;
        }
        if let Some(p) = self.parts.get(self.part) {
            let (whole, _) = p[self.off..].as_chunks::<64>();
            if !whole.is_empty() {
                self.off += 64 * whole.len();
                self.next += whole.len();
                return whole;
            }
        }
        self.fill(buf);
        std::slice::from_ref(buf)
    }

    /// Gives back the last `n` blocks of an in-place run.
    pub(crate) fn unread(&mut self, n: usize) {
        self.off -= 64 * n;
        self.next -= n;
    }

    fn fill(&mut self, block: &mut [u8; 64]) {
        let base = 64 * self.next;
        let mut at = 0;
        while at < 64 && self.part < self.parts.len() {
            let p = self.parts[self.part];
            let take = (p.len() - self.off).min(64 - at);
            block[at..at + take].copy_from_slice(&p[self.off..self.off + take]);
            at += take;
            self.off += take;
            if self.off == p.len() {
                self.part += 1;
                self.off = 0;
            }
        }
        if at < 64 {
            block[at..].fill(0);
            if base + at == self.len {
                block[at] = 0x80;
            }
        }
        self.next += 1;
        if self.done() {
            block[56..].copy_from_slice(&(8 * self.len as u64).to_be_bytes());
        }
    }
}

/// A hash state's words, big-endian: the digest.
pub(crate) fn be_bytes<const N: usize, const M: usize>(s: &[u32; N]) -> [u8; M] {
    const { assert!(M == 4 * N) };
    let mut out = [0u8; M];
    for (c, w) in out.chunks_exact_mut(4).zip(s) {
        c.copy_from_slice(&w.to_be_bytes());
    }
    out
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
    fn short_sha256_matches_the_streaming_hasher_at_every_length() {
        let data: Vec<u8> = (0..=200u8).collect();
        for len in 0..=data.len() {
            let msg = &data[..len];
            let expect: Digest = sha2::Sha256::digest(msg).into();
            let (a, b) = msg.split_at(len / 3);
            assert_eq!(HashAlg::Sha256.hash_parts(&[a, b]), expect, "length {len}");
        }
    }

    #[test]
    fn pair_digests_are_the_crates_at_every_length_around_the_blocks() {
        // On a CPU with the SHA extensions the pairs take the interleaved kernels;
        // without them this would only test the fallback.
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("sha") {
            assert!(crate::shani::sha256_x2(&[b"a"], &[b"b"]).is_some());
            assert!(crate::shani::sha1_x2(&[b"a"], &[b"b"]).is_some());
        } else {
            println!("no SHA extensions on this CPU: only the fallback is tested");
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        // Lengths where the padding moves to another block, runs of whole
        // blocks of unequal count, and splits inside and on block boundaries.
        let others = [
            0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 129, 700, 1200, 3001,
        ];
        for la in 0..=300 {
            for lb in others.into_iter().chain([la, 2 * la + 64, la / 2]) {
                let (a, b) = (&data[..la], &data[1000..1000 + lb]);
                let (a0, a1) = a.split_at(la * 2 / 3);
                let (b0, b1) = b.split_at(lb.min(10));
                let (b1, b2) = b1.split_at(b1.len().min(5));
                let pa: [&[u8]; 4] = [a0, b"", a1, b""];
                // `b`'s first block spans three parts; the blocks after are read in place.
                let pb: [&[u8]; 3] = [b0, b1, b2];
                let (ha, hb) = sha256_pair(&pa, &pb);
                assert_eq!(ha, Digest::from(sha2::Sha256::digest(a)), "sha256 {la}");
                assert_eq!(hb, Digest::from(sha2::Sha256::digest(b)), "sha256 {lb}");
                let (ha, hb) = sha1_pair(&pb, &pa);
                assert_eq!(ha, <[u8; 20]>::from(sha1::Sha1::digest(b)), "sha1 {lb}");
                assert_eq!(hb, <[u8; 20]>::from(sha1::Sha1::digest(a)), "sha1 {la}");
            }
        }
        // FIPS 180 examples.
        let (s256, s1) = (sha256_pair(&[b"abc"], &[b""]), sha1_pair(&[b""], &[b"abc"]));
        assert_eq!(
            hex(&s256.0),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&s256.1),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(hex(&s1.0), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(hex(&s1.1), "a9993e364706816aba3e25717850c26c9cd0d89d");
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
