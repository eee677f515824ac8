//! Hash chain and RFC 6962 Merkle tree (leaf = H(0x00 ‖ d), node = H(0x01 ‖ l ‖ r)).

use crate::digest::{Digest, HashAlg};

const CHAIN_GENESIS_TAG: &[u8] = b"agent-bom/chain/v1\0";

/// chain[-1] = H("agent-bom/chain/v1\0" ‖ streamid)
pub fn genesis(alg: HashAlg, stream_id: &str) -> Digest {
    alg.hash_parts(&[CHAIN_GENESIS_TAG, stream_id.as_bytes()])
}

/// chain[seq] = H(chain[seq-1] ‖ contenthash[seq] ‖ u64be(seq))
pub fn link(alg: HashAlg, prev: &Digest, content: &Digest, seq: u64) -> Digest {
    alg.hash_parts(&[prev, content, &seq.to_be_bytes()])
}

pub fn leaf_hash(alg: HashAlg, data: &[u8]) -> Digest {
    alg.hash_parts(&[&[0u8], data])
}

pub fn node_hash(alg: HashAlg, l: &Digest, r: &Digest) -> Digest {
    alg.hash_parts(&[&[1u8], l, r])
}

/// Append-only Merkle accumulator: keeps the roots of the perfect subtrees
/// that cover the leaves so far (one per set bit of the size), so appending
/// costs O(1) amortized and the root of the current size costs O(log n).
#[derive(Clone)]
pub struct MerkleAccumulator {
    alg: HashAlg,
    size: u64,
    /// (height, hash) of perfect subtrees, left to right, heights strictly decreasing.
    stack: Vec<(u32, Digest)>,
}

impl MerkleAccumulator {
    pub fn new(alg: HashAlg) -> Self {
        MerkleAccumulator {
            alg,
            size: 0,
            stack: Vec::with_capacity(64),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect-subtree roots (height, hash), left to right: the whole state.
    pub fn stack(&self) -> &[(u32, Digest)] {
        &self.stack
    }

    /// Rebuilds an accumulator from `stack()`; the heights must be strictly
    /// decreasing (one per set bit of the size).
    pub fn from_stack(alg: HashAlg, stack: Vec<(u32, Digest)>) -> Result<Self, String> {
        let mut size = 0u64;
        for (i, &(h, _)) in stack.iter().enumerate() {
            if h >= 63 || (i > 0 && h >= stack[i - 1].0) {
                return Err("merkle stack heights must be strictly decreasing and < 63".into());
            }
            size += 1u64 << h;
        }
        Ok(MerkleAccumulator { alg, size, stack })
    }

    /// Appends an already computed leaf hash (H(0x00 ‖ data)).
    pub fn push_leaf_hash(&mut self, leaf: Digest) {
        let mut node = (0u32, leaf);
        while let Some(&(h, left)) = self.stack.last() {
            if h != node.0 {
                break;
            }
            self.stack.pop();
            node = (h + 1, node_hash(self.alg, &left, &node.1));
        }
        self.stack.push(node);
        self.size += 1;
    }

    /// RFC 6962 MTH of the leaves appended so far.
    pub fn root(&self) -> Digest {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return self.alg.hash(b"");
        };
        for (_, left) in iter {
            acc = node_hash(self.alg, left, &acc);
        }
        acc
    }
}

/// RFC 6962 MTH over leaf hashes (reference implementation, recursive).
pub fn tree_root(alg: HashAlg, leaves: &[Digest]) -> Digest {
    match leaves.len() {
        0 => alg.hash(b""),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(
                alg,
                &tree_root(alg, &leaves[..k]),
                &tree_root(alg, &leaves[k..]),
            )
        }
    }
}

/// Largest power of two strictly smaller than n (n ≥ 2).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// RFC 6962 §2.1.1 PATH(m, D[n]): audit path for leaf `index` in the tree of `leaves`.
pub fn inclusion_proof(alg: HashAlg, leaves: &[Digest], index: usize) -> Vec<Digest> {
    let mut path = Vec::new();
    let (mut lo, mut hi, mut m) = (0usize, leaves.len(), index);
    let mut siblings = Vec::new();
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if m < k {
            siblings.push((lo + k, hi));
            hi = lo + k;
        } else {
            siblings.push((lo, lo + k));
            lo += k;
            m -= k;
        }
    }
    for (a, b) in siblings.into_iter().rev() {
        path.push(tree_root(alg, &leaves[a..b]));
    }
    path
}

/// RFC 9162 §2.1.3.2: recompute the root from a leaf hash and its audit path.
pub fn root_from_inclusion_proof(
    alg: HashAlg,
    leaf: &Digest,
    index: u64,
    size: u64,
    path: &[Digest],
) -> Option<Digest> {
    if index >= size {
        return None;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if sn == 0 {
            return None;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(alg, p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(alg, &r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return None;
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::hex;

    fn ct_leaves() -> Vec<Digest> {
        // The eight leaf inputs used across Certificate Transparency test suites.
        let inputs: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
                0x6e, 0x6f,
            ],
        ];
        inputs
            .iter()
            .map(|d| leaf_hash(HashAlg::Sha256, d))
            .collect()
    }

    #[test]
    fn rfc6962_root_for_eight_leaves() {
        let leaves = ct_leaves();
        assert_eq!(
            hex(&tree_root(HashAlg::Sha256, &leaves)),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
    }

    #[test]
    fn accumulator_matches_reference_at_every_size() {
        let leaves: Vec<Digest> = (0u32..70)
            .map(|i| leaf_hash(HashAlg::Sha256, &i.to_be_bytes()))
            .collect();
        let mut acc = MerkleAccumulator::new(HashAlg::Sha256);
        assert_eq!(acc.root(), tree_root(HashAlg::Sha256, &[]));
        for (i, l) in leaves.iter().enumerate() {
            acc.push_leaf_hash(*l);
            assert_eq!(
                acc.root(),
                tree_root(HashAlg::Sha256, &leaves[..=i]),
                "size {}",
                i + 1
            );
        }
    }

    #[test]
    fn inclusion_proofs_round_trip_and_detect_tampering() {
        let leaves: Vec<Digest> = (0u32..37)
            .map(|i| leaf_hash(HashAlg::Blake3, &i.to_be_bytes()))
            .collect();
        for n in 1..=leaves.len() {
            let root = tree_root(HashAlg::Blake3, &leaves[..n]);
            for m in 0..n {
                let path = inclusion_proof(HashAlg::Blake3, &leaves[..n], m);
                let got = root_from_inclusion_proof(
                    HashAlg::Blake3,
                    &leaves[m],
                    m as u64,
                    n as u64,
                    &path,
                );
                assert_eq!(got, Some(root), "n={n} m={m}");
                if let Some(first) = path.first() {
                    let mut bad = path.clone();
                    bad[0] = node_hash(HashAlg::Blake3, first, first);
                    assert_ne!(
                        root_from_inclusion_proof(
                            HashAlg::Blake3,
                            &leaves[m],
                            m as u64,
                            n as u64,
                            &bad
                        ),
                        Some(root)
                    );
                }
            }
        }
    }
}
