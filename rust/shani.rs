//! SHA-256 and SHA-1 of two messages at once with the x86 SHA extensions.
//!
//! A SHA-NI round instruction waits on the one before it, so one message
//! leaves the unit idle between rounds; the rounds of two independent
//! messages, interleaved, fill it. The `sha2`/`sha1` crates hash one message
//! at a time (they still compress the blocks only one message has). Every
//! digest here is tested against theirs at every length around the block
//! boundaries (`digest::tests`); what pairing gains is in docs/architecture.md.

use core::arch::x86_64::*;

use crate::digest::{be_bytes, Padded, SHA1_IV};

const K256: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Whether this CPU has the instructions the pair kernels use.
fn available() -> bool {
    is_x86_feature_detected!("sha")
        && is_x86_feature_detected!("sse4.1")
        && is_x86_feature_detected!("ssse3")
}

/// Four SHA-256 rounds `4i..4i+4` of one message. `w` is a window of the
/// schedule, four words to a vector; from group 4 on, each vector is computed
/// from the four before it (FIPS 180-4 §6.2.2 step 1): `sha256msg1` adds
/// σ0, the `alignr` brings W[t-7], `sha256msg2` adds σ1.
macro_rules! sha256_group {
    ($i:literal, ($w:ident, $s0:ident, $s1:ident)) => {{
        if $i >= 4 {
            let t = _mm_sha256msg1_epu32($w[$i % 4], $w[($i + 1) % 4]);
            let t = _mm_add_epi32(t, _mm_alignr_epi8($w[($i + 3) % 4], $w[($i + 2) % 4], 4));
            $w[$i % 4] = _mm_sha256msg2_epu32(t, $w[($i + 3) % 4]);
        }
        let k = _mm_loadu_si128(K256.as_ptr().add(4 * $i).cast());
        let m = _mm_add_epi32($w[$i % 4], k);
        $s1 = _mm_sha256rnds2_epu32($s1, $s0, m);
        $s0 = _mm_sha256rnds2_epu32($s0, $s1, _mm_shuffle_epi32(m, 0x0E));
    }};
}

/// Each group for one message, then for the other: two independent chains
/// of round instructions in program order, which the CPU overlaps.
macro_rules! x2 {
    ($m:ident!($($i:literal)*) ; $a:tt ; $b:tt) => {
        $( $m!($i, $a); $m!($i, $b); )*
    };
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn to_abef(s: &[u32; 8]) -> (__m128i, __m128i) {
    let t = _mm_loadu_si128(s.as_ptr().cast());
    let s1 = _mm_loadu_si128(s.as_ptr().add(4).cast());
    let t = _mm_shuffle_epi32(t, 0xB1); // CDAB
    let s1 = _mm_shuffle_epi32(s1, 0x1B); // EFGH
    (_mm_alignr_epi8(t, s1, 8), _mm_blend_epi16(s1, t, 0xF0)) // ABEF, CDGH
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn from_abef(s0: __m128i, s1: __m128i, s: &mut [u32; 8]) {
    let t = _mm_shuffle_epi32(s0, 0x1B); // FEBA
    let s1 = _mm_shuffle_epi32(s1, 0xB1); // DCHG
    _mm_storeu_si128(s.as_mut_ptr().cast(), _mm_blend_epi16(t, s1, 0xF0)); // DCBA
    _mm_storeu_si128(s.as_mut_ptr().add(4).cast(), _mm_alignr_epi8(s1, t, 8)); // HGFE
}

/// Compresses `ba[i]` into `sa` and `bb[i]` into `sb`, rounds interleaved.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn compress256_x2(sa: &mut [u32; 8], sb: &mut [u32; 8], ba: &[[u8; 64]], bb: &[[u8; 64]]) {
    assert_eq!(ba.len(), bb.len());
    let mask = _mm_set_epi64x(0x0c0d0e0f08090a0b, 0x0405060700010203);
    let (mut a0, mut a1) = to_abef(sa);
    let (mut b0, mut b1) = to_abef(sb);
    for (xa, xb) in ba.iter().zip(bb) {
        let (sa0, sa1, sb0, sb1) = (a0, a1, b0, b1);
        let load = |x: &[u8; 64], i: usize| {
            _mm_shuffle_epi8(_mm_loadu_si128(x.as_ptr().add(16 * i).cast()), mask)
        };
        let mut wa = [load(xa, 0), load(xa, 1), load(xa, 2), load(xa, 3)];
        let mut wb = [load(xb, 0), load(xb, 1), load(xb, 2), load(xb, 3)];
        x2!(sha256_group!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15); (wa, a0, a1); (wb, b0, b1));
        a0 = _mm_add_epi32(a0, sa0);
        a1 = _mm_add_epi32(a1, sa1);
        b0 = _mm_add_epi32(b0, sb0);
        b1 = _mm_add_epi32(b1, sb1);
    }
    from_abef(a0, a1, sa);
    from_abef(b0, b1, sb);
}

/// Four SHA-1 rounds `4j..4j+4` of one message (round function `j / 5`).
/// `m` is a window of the schedule (FIPS 180-4 §6.1.2 step 1: `sha1msg1`,
/// the xor with W[t-8], `sha1msg2` with its rotate); `prev` is the state
/// before the previous group, whose A gives this group's E (`sha1nexte`).
macro_rules! sha1_group {
    ($j:literal, ($m:ident, $abcd:ident, $prev:ident, $e0:ident)) => {{
        if $j >= 4 {
            let t = _mm_sha1msg1_epu32($m[$j % 4], $m[($j + 1) % 4]);
            let t = _mm_xor_si128(t, $m[($j + 2) % 4]);
            $m[$j % 4] = _mm_sha1msg2_epu32(t, $m[($j + 3) % 4]);
        }
        let e = if $j == 0 {
            _mm_add_epi32($e0, $m[0])
        } else {
            _mm_sha1nexte_epu32($prev, $m[$j % 4])
        };
        $prev = $abcd;
        $abcd = _mm_sha1rnds4_epu32::<{ $j / 5 }>($abcd, e);
    }};
}

/// Compresses `ba[i]` into `sa` and `bb[i]` into `sb` (SHA-1), rounds interleaved.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn compress1_x2(sa: &mut [u32; 5], sb: &mut [u32; 5], ba: &[[u8; 64]], bb: &[[u8; 64]]) {
    assert_eq!(ba.len(), bb.len());
    let mask = _mm_set_epi64x(0x0001020304050607, 0x08090a0b0c0d0e0f);
    let load_state = |s: &[u32; 5]| {
        (
            _mm_shuffle_epi32(_mm_loadu_si128(s.as_ptr().cast()), 0x1B),
            _mm_set_epi32(s[4] as i32, 0, 0, 0),
        )
    };
    let (mut abcd_a, mut e_a) = load_state(sa);
    let (mut abcd_b, mut e_b) = load_state(sb);
    for (xa, xb) in ba.iter().zip(bb) {
        let (save_abcd_a, save_e_a, save_abcd_b, save_e_b) = (abcd_a, e_a, abcd_b, e_b);
        let load = |x: &[u8; 64], i: usize| {
            _mm_shuffle_epi8(_mm_loadu_si128(x.as_ptr().add(16 * i).cast()), mask)
        };
        let mut ma = [load(xa, 0), load(xa, 1), load(xa, 2), load(xa, 3)];
        let mut mb = [load(xb, 0), load(xb, 1), load(xb, 2), load(xb, 3)];
        let mut prev_a = abcd_a;
        let mut prev_b = abcd_b;
        x2!(sha1_group!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19);
            (ma, abcd_a, prev_a, e_a); (mb, abcd_b, prev_b, e_b));
        e_a = _mm_sha1nexte_epu32(prev_a, save_e_a);
        abcd_a = _mm_add_epi32(abcd_a, save_abcd_a);
        e_b = _mm_sha1nexte_epu32(prev_b, save_e_b);
        abcd_b = _mm_add_epi32(abcd_b, save_abcd_b);
    }
    let store = |abcd: __m128i, e: __m128i, s: &mut [u32; 5]| {
        _mm_storeu_si128(s.as_mut_ptr().cast(), _mm_shuffle_epi32(abcd, 0x1B));
        s[4] = _mm_extract_epi32(e, 3) as u32;
    };
    store(abcd_a, e_a, sa);
    store(abcd_b, e_b, sb);
}

/// Runs `pair` over the blocks both messages have and `one` over the rest.
fn drive<S: Copy>(
    a: &[&[u8]],
    b: &[&[u8]],
    iv: S,
    pair: impl Fn(&mut S, &mut S, &[[u8; 64]], &[[u8; 64]]),
    one: impl Fn(&mut S, &[[u8; 64]]),
) -> (S, S) {
    let (mut pa, mut pb) = (Padded::new(a), Padded::new(b));
    let (mut sa, mut sb) = (iv, iv);
    let (mut ka, mut kb) = ([0u8; 64], [0u8; 64]);
    while !pa.done() && !pb.done() {
        let ra = pa.next_run(&mut ka);
        let rb = pb.next_run(&mut kb);
        let n = ra.len().min(rb.len());
        pair(&mut sa, &mut sb, &ra[..n], &rb[..n]);
        pa.unread(ra.len() - n);
        pb.unread(rb.len() - n);
    }
    for (p, s) in [(&mut pa, &mut sa), (&mut pb, &mut sb)] {
        while !p.done() {
            one(s, p.next_run(&mut ka));
        }
    }
    (sa, sb)
}

/// SHA-256 of two messages (each given as parts); `None` without SHA-NI.
pub(crate) fn sha256_x2(a: &[&[u8]], b: &[&[u8]]) -> Option<([u8; 32], [u8; 32])> {
    if !available() {
        return None;
    }
    let (sa, sb) = drive(
        a,
        b,
        crate::digest::SHA256_IV,
        // SAFETY: the CPU has the instructions (checked above).
        |sa, sb, ba, bb| unsafe { compress256_x2(sa, sb, ba, bb) },
        sha2::block_api::compress256,
    );
    Some((be_bytes(&sa), be_bytes(&sb)))
}

/// SHA-1 of two messages (each given as parts); `None` without SHA-NI.
pub(crate) fn sha1_x2(a: &[&[u8]], b: &[&[u8]]) -> Option<([u8; 20], [u8; 20])> {
    if !available() {
        return None;
    }
    let (sa, sb) = drive(
        a,
        b,
        SHA1_IV,
        // SAFETY: the CPU has the instructions (checked above).
        |sa, sb, ba, bb| unsafe { compress1_x2(sa, sb, ba, bb) },
        sha1::block_api::compress,
    );
    Some((be_bytes(&sa), be_bytes(&sb)))
}
