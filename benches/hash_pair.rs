//! Hashing two messages at once (`digest::sha256_pair`, `digest::sha1_pair`)
//! against the `sha2` and `sha1` crates hashing them one after the other: the
//! digests the stream computes per event (SHA-1 of the native event for a
//! derived id, SHA-256 of the CloudEvent), on messages of ~1.2 KB like a
//! 1 KiB event's. Run: `cargo bench --bench hash_pair` (part of `make bench`).

use std::hint::black_box;
use std::time::Instant;

use agent_bom_core::digest::{sha1_pair, sha256_pair};
use sha2::Digest as _;

/// The fastest of five runs of `n` calls, in ns per message (two per call).
fn per_message(n: u32, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() * 1e9 / f64::from(2 * n)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let n = 100_000;
    println!("two messages at once vs one after the other (ns per message, best of 5)");
    for len in [200, 1200, 3000] {
        let (a, b) = (&data[..len], &data[1000..1000 + len]);
        let one256 = per_message(n, || {
            black_box(sha2::Sha256::digest(black_box(a)));
            black_box(sha2::Sha256::digest(black_box(b)));
        });
        let two256 = per_message(n, || {
            black_box(sha256_pair(&[black_box(a)], &[black_box(b)]));
        });
        let one1 = per_message(n, || {
            black_box(sha1::Sha1::digest(black_box(a)));
            black_box(sha1::Sha1::digest(black_box(b)));
        });
        let two1 = per_message(n, || {
            black_box(sha1_pair(&[black_box(a)], &[black_box(b)]));
        });
        println!(
            "  {len:>5} B  SHA-256 {one256:>6.0} → {two256:>6.0} ({:.2}x)   SHA-1 {one1:>6.0} → {two1:>6.0} ({:.2}x)",
            one256 / two256,
            one1 / two1
        );
    }
}
