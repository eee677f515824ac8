//! The redactor's keyword prefilter: every ASCII-case-insensitive occurrence
//! of a set of keywords in a text.
//!
//! Two engines find exactly the same occurrences:
//! - `Dfa`, on any CPU: an Aho-Corasick DFA run in four interleaved lanes,
//!   ~0.8 ns a byte.
//! - `Buckets`, on x86-64 CPUs with AVX-512 VBMI: keywords are spread over 16
//!   buckets, and 64 text positions at a time are tested against each
//!   bucket's possible bytes at each of the first four offsets (one 128-entry
//!   table lookup per offset and group of eight buckets, `vpermi2b`). A
//!   position where some bucket admits all four bytes is a candidate; the
//!   keywords with its first two bytes are then compared there. On the
//!   bench's events ~9 positions per KiB pass, ~5 of them holding a keyword's
//!   first four bytes: ~0.1 ns a byte for the search, ~0.3 with the checks.
//!
//! Which engine runs depends only on the CPU, never on the result. The line's
//! digit mask is gathered in the same pass (`KeywordScanner::scan_line`).

/// Keyword bytes the DFA matches and the buckets test; the rest is compared at each hit.
pub(crate) const PREFIX_LEN: usize = 4;

/// A keyword occurrence: (start, end, keyword).
pub(crate) type Hit = (usize, usize, usize);

/// Finds every keyword occurrence, with the fastest engine this CPU runs.
pub(crate) struct KeywordScanner {
    dfa: Dfa,
    buckets: Option<Buckets>,
}

impl KeywordScanner {
    /// `None` when there are no keywords or their DFA needs more than 2^16
    /// cells (the DFA is built everywhere, so a rule set that loads on one
    /// machine loads on every machine).
    pub(crate) fn new(keywords: Vec<Vec<u8>>) -> Option<KeywordScanner> {
        let buckets = Buckets::supported()
            .then(|| Buckets::new(&keywords))
            .flatten();
        Some(KeywordScanner {
            dfa: Dfa::new(keywords)?,
            buckets,
        })
    }

    /// The same scanner on the portable engine, whatever the CPU.
    #[cfg(test)]
    pub(crate) fn portable(mut self) -> KeywordScanner {
        self.buckets = None;
        self
    }

    /// Every keyword occurrence in `text`, unsorted, possibly twice.
    pub(crate) fn scan(&self, text: &[u8], hits: &mut Vec<Hit>) {
        match &self.buckets {
            Some(b) => b.scan::<false>(text, hits, &mut Vec::new()),
            None => self.dfa.scan(text, hits),
        }
    }

    /// `scan`, and where the ASCII digits are: bit `i % 64` of `digits[i / 64]`
    /// (the SIMD engine finds them in the same pass).
    pub(crate) fn scan_line(&self, text: &[u8], hits: &mut Vec<Hit>, digits: &mut Vec<u64>) {
        match &self.buckets {
            Some(b) => b.scan::<true>(text, hits, digits),
            None => {
                self.dfa.scan(text, hits);
                digit_mask(text, digits);
            }
        }
    }
}

/// Bit `i % 64` of `out[i / 64]` is set where `text[i]` is an ASCII digit.
pub(crate) fn digit_mask(text: &[u8], out: &mut Vec<u64>) {
    out.clear();
    let mut blocks = text.chunks_exact(64);
    for block in &mut blocks {
        out.push(block_digits(block));
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        out.push(
            rest.iter()
                .enumerate()
                .fold(0u64, |m, (j, c)| m | u64::from(c.is_ascii_digit()) << j),
        );
    }
}

/// The digit bits of 64 bytes: SSE2 (every x86-64 has it) sixteen at a time.
#[cfg(target_arch = "x86_64")]
fn block_digits(block: &[u8]) -> u64 {
    use std::arch::x86_64::*;
    // SAFETY (each block): SSE2 is part of the x86-64 baseline, and `block`
    // is 64 bytes, so each of its quarters is 16.
    let (below, above) = unsafe { (_mm_set1_epi8(b'0' as i8 - 1), _mm_set1_epi8(b'9' as i8 + 1)) };
    (0..4).fold(0u64, |m, q| {
        let bits = unsafe {
            let v = _mm_loadu_si128(block[16 * q..].as_ptr().cast());
            // Signed compares: bytes past 0x7f are negative, never digits.
            _mm_movemask_epi8(_mm_and_si128(
                _mm_cmpgt_epi8(v, below),
                _mm_cmplt_epi8(v, above),
            ))
        };
        m | u64::from(bits as u16) << (16 * q)
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn block_digits(block: &[u8]) -> u64 {
    block
        .iter()
        .enumerate()
        .fold(0u64, |m, (j, c)| m | u64::from(c.is_ascii_digit()) << j)
}

/// How many bits of `mask` (as `digit_mask` lays them out) are set in `from..to`.
#[inline]
pub(crate) fn count_in(mask: &[u64], from: usize, to: usize) -> usize {
    if from >= to {
        return 0;
    }
    let (first, last) = (from / 64, (to - 1) / 64);
    let head = u64::MAX << (from % 64);
    let tail = u64::MAX >> (63 - (to - 1) % 64);
    if first == last {
        return (mask[first] & head & tail).count_ones() as usize;
    }
    let inner: u32 = mask[first + 1..last].iter().map(|w| w.count_ones()).sum();
    ((mask[first] & head).count_ones() + inner + (mask[last] & tail).count_ones()) as usize
}

/// The portable engine: an Aho-Corasick DFA over the keywords' first
/// `PREFIX_LEN` bytes, with 16-bit premultiplied state ids (small enough to
/// stay in the L1 cache), then a comparison of the rest of each keyword where
/// its prefix ends.
struct Dfa {
    /// Byte → column of the transition table; 0 for bytes in no pattern.
    classes: [u8; 256],
    /// Row of state `s` is `trans[s..s + columns]`; match states come first.
    /// Indexed by a `u16`, so the table spans the whole range and needs no
    /// bounds check in the scanning loop.
    trans: Box<[u16; 1 << 16]>,
    match_limit: u16,
    columns: u16,
    /// Keywords whose prefix ends at each match state, as (keyword, prefix length).
    outputs: Vec<Vec<(usize, usize)>>,
    /// Longest prefix.
    max_len: usize,
    /// Lowercase.
    keywords: Vec<Vec<u8>>,
}

impl Dfa {
    /// `None` when there are no keywords or their automaton needs more than 2^16 cells.
    fn new(keywords: Vec<Vec<u8>>) -> Option<Dfa> {
        let patterns: Vec<&[u8]> = keywords
            .iter()
            .map(|k| &k[..k.len().min(PREFIX_LEN)])
            .collect();
        let mut classes = [0u8; 256];
        let mut columns = 1usize;
        for &c in patterns.iter().copied().flatten() {
            let c = c.to_ascii_lowercase();
            if classes[usize::from(c)] == 0 {
                let class = u8::try_from(columns).ok()?;
                classes[usize::from(c)] = class;
                classes[usize::from(c.to_ascii_uppercase())] = class;
                columns += 1;
            }
        }
        // The trie: goto[node][class], u32::MAX where there is no edge.
        let mut goto: Vec<Vec<u32>> = vec![vec![u32::MAX; columns]];
        let mut outputs: Vec<Vec<(usize, usize)>> = vec![Vec::new()];
        for (i, p) in patterns.iter().enumerate() {
            let mut node = 0;
            for &c in *p {
                let class = usize::from(classes[usize::from(c)]);
                if goto[node][class] == u32::MAX {
                    goto[node][class] = goto.len() as u32;
                    goto.push(vec![u32::MAX; columns]);
                    outputs.push(Vec::new());
                }
                node = goto[node][class] as usize;
            }
            outputs[node].push((i, p.len()));
        }
        let n = goto.len();
        if patterns.is_empty() || n * columns > 1 << 16 {
            return None;
        }
        // Breadth first: failure links, then full DFA transitions and outputs.
        let mut delta = vec![vec![0u32; columns]; n];
        let mut fail = vec![0u32; n];
        let mut queue = std::collections::VecDeque::from([0u32]);
        while let Some(u) = queue.pop_front() {
            let u = u as usize;
            for class in 0..columns {
                let v = goto[u][class];
                if v == u32::MAX {
                    delta[u][class] = if u == 0 {
                        0
                    } else {
                        delta[fail[u] as usize][class]
                    };
                    continue;
                }
                delta[u][class] = v;
                let f = if u == 0 {
                    0
                } else {
                    delta[fail[u] as usize][class]
                };
                fail[v as usize] = f;
                let inherited = outputs[f as usize].clone();
                outputs[v as usize].extend(inherited);
                queue.push_back(v);
            }
        }
        // Renumber: match states first, so "is a match" is one comparison.
        let mut order: Vec<usize> = (0..n).filter(|&s| !outputs[s].is_empty()).collect();
        let matches = order.len();
        order.extend((0..n).filter(|&s| outputs[s].is_empty()));
        let mut id = vec![0u16; n];
        for (new, &old) in order.iter().enumerate() {
            id[old] = (new * columns) as u16;
        }
        let mut trans: Box<[u16; 1 << 16]> =
            vec![0u16; 1 << 16].into_boxed_slice().try_into().ok()?;
        for (new, &old) in order.iter().enumerate() {
            for class in 0..columns {
                trans[new * columns + class] = id[delta[old][class] as usize];
            }
        }
        let start = id[0];
        debug_assert_eq!(start as usize, matches * columns);
        Some(Dfa {
            classes,
            trans,
            match_limit: (matches * columns) as u16,
            columns: columns as u16,
            outputs: order[..matches]
                .iter()
                .map(|&s| std::mem::take(&mut outputs[s]))
                .collect(),
            max_len: patterns.iter().map(|p| p.len()).max().unwrap_or(0),
            keywords,
        })
    }

    #[inline(always)]
    fn next(&self, s: u16, c: u8) -> u16 {
        self.trans[usize::from(s.wrapping_add(u16::from(self.classes[usize::from(c)])))]
    }

    /// Pushes the keywords whose prefix ends at `end` in `text`, reaching state `s`.
    #[cold]
    #[inline(never)]
    fn push_matches(&self, s: u16, text: &[u8], end: usize, hits: &mut Vec<Hit>) {
        for &(k, prefix) in &self.outputs[usize::from(s / self.columns)] {
            // The automaton has matched the prefix already.
            let (rest, start) = (&self.keywords[k][prefix..], end - prefix);
            let found = text.get(end..end + rest.len());
            if found.is_some_and(|t| t.eq_ignore_ascii_case(rest)) {
                hits.push((start, end + rest.len(), k));
            }
        }
    }

    /// Runs from state `s` over `text[from..to]`, recording matches; returns the state reached.
    fn run(&self, mut s: u16, text: &[u8], from: usize, to: usize, hits: &mut Vec<Hit>) -> u16 {
        for (at, &c) in text[from..to].iter().enumerate() {
            s = self.next(s, c);
            if s < self.match_limit {
                self.push_matches(s, text, from + at + 1, hits);
            }
        }
        s
    }

    /// Every keyword occurrence in `text`, unsorted, possibly twice.
    ///
    /// A DFA step waits on the load of the step before, so four walks over as
    /// many quarters of the text interleave. Each quarter is read from
    /// `max_len - 1` bytes early, so no occurrence crossing a boundary is missed.
    fn scan(&self, text: &[u8], hits: &mut Vec<Hit>) {
        const MIN_LANE: usize = 64;
        let start = self.match_limit;
        let overlap = self.max_len.saturating_sub(1);
        let seg = text.len().div_ceil(4);
        if seg < MIN_LANE.max(overlap) {
            self.run(start, text, 0, text.len(), hits);
            return;
        }
        let from = [0, seg - overlap, 2 * seg - overlap, 3 * seg - overlap];
        // The last lane is the shortest; the others finish alone afterwards.
        let common = text.len() - from[3];
        let [l0, l1, l2, l3] = from.map(|f| &text[f..f + common]);
        let mut s = [start; 4];
        for (j, (((&a, &b), &c), &d)) in l0.iter().zip(l1).zip(l2).zip(l3).enumerate() {
            s = [
                self.next(s[0], a),
                self.next(s[1], b),
                self.next(s[2], c),
                self.next(s[3], d),
            ];
            if s.iter().any(|&x| x < self.match_limit) {
                for (k, &x) in s.iter().enumerate() {
                    if x < self.match_limit {
                        self.push_matches(x, text, from[k] + j + 1, hits);
                    }
                }
            }
        }
        // Lanes 0-2 end where the next lane's own quarter starts.
        for k in 0..3 {
            let (a, b) = (from[k] + common, from[k + 1] + overlap);
            if a < b {
                self.run(s[k], text, a, b, hits);
            }
        }
    }
}

/// Buckets the keywords are spread over: two 8-bit masks per text position.
const BUCKETS: usize = 16;

/// For each of the first `PREFIX_LEN` offsets from a candidate start, and each
/// half of the buckets: the folded byte there (`c | 0x20`, seven bits) → the
/// buckets that admit it.
type Tables = [[[u8; 128]; 2]; PREFIX_LEN];

/// Keywords by a hash of their first two bytes, folded: where a candidate
/// position is checked, with one lookup in a table small enough to stay in
/// the L1 cache and a short list (keywords whose pairs share a slot share it).
struct Prefixes {
    /// Slot → its keywords' range in `entries`.
    slots: Box<[(u16, u16); PAIR_SLOTS]>,
    /// (folded prefix word, mask of its bytes, keyword), grouped by slot.
    entries: Vec<(u32, u32, usize)>,
}

const PAIR_SLOTS: usize = 1024;

/// The slot of a folded first byte and second byte.
fn pair_slot(c0: u8, c1: u8) -> usize {
    let pair = u32::from(c0 & 0x7f) | u32::from(c1 & 0x7f) << 7;
    (pair.wrapping_mul(0x9e37_79b1) >> 22) as usize
}

impl Prefixes {
    fn new(keywords: &[Vec<u8>]) -> Option<Prefixes> {
        let mut lists: Vec<Vec<usize>> = vec![Vec::new(); PAIR_SLOTS];
        for (i, k) in keywords.iter().enumerate() {
            let c0 = fold(k[0]);
            match k.get(1) {
                Some(&c1) => lists[pair_slot(c0, fold(c1))].push(i),
                // A one-byte keyword: whatever follows it.
                None => {
                    let mut slots: Vec<usize> = (0..128).map(|c1| pair_slot(c0, c1)).collect();
                    slots.sort_unstable();
                    slots.dedup();
                    slots.into_iter().for_each(|slot| lists[slot].push(i));
                }
            }
        }
        let mut slots: Box<[(u16, u16); PAIR_SLOTS]> = Box::new([(0, 0); PAIR_SLOTS]);
        let mut entries = Vec::new();
        for (slot, list) in lists.iter().enumerate() {
            let start = u16::try_from(entries.len()).ok()?;
            entries.extend(list.iter().map(|&k| {
                let (word, len) = head_word(&keywords[k]);
                (word, u32::MAX >> (32 - 8 * u32::from(len)), k)
            }));
            slots[slot] = (start, u16::try_from(list.len()).ok()?);
        }
        Some(Prefixes { slots, entries })
    }

    /// The keywords whose folded prefix is the start of `word` (folded text bytes).
    #[inline(always)]
    fn each_at(&self, word: u32, mut f: impl FnMut(usize)) {
        let (start, count) = self.slots[pair_slot(word as u8, (word >> 8) as u8)];
        let start = usize::from(start);
        for &(prefix, mask, k) in &self.entries[start..start + usize::from(count)] {
            if word & mask == prefix {
                f(k);
            }
        }
    }
}

/// A keyword's first bytes (at most `PREFIX_LEN`), folded, as a little-endian word, and how many.
fn head_word(k: &[u8]) -> (u32, u8) {
    let head = &k[..k.len().min(PREFIX_LEN)];
    let mut word = [0u8; 4];
    for (w, &c) in word.iter_mut().zip(head) {
        *w = fold(c);
    }
    (u32::from_le_bytes(word), head.len() as u8)
}

/// The SIMD engine: candidates by bucket tables, then the keywords with the
/// candidate's first bytes compared in place.
struct Buckets {
    tables: Tables,
    prefixes: Prefixes,
    /// Lowercase.
    keywords: Vec<Vec<u8>>,
    /// Whether the candidates are found with AVX-512 (else one position at a
    /// time, which only tests use: `KeywordScanner` keeps the DFA then).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    simd: bool,
}

/// ASCII case folding that never separates a byte from its other case: it
/// also joins some punctuation pairs (`@` and `` ` ``), which only adds candidates.
fn fold(c: u8) -> u8 {
    c | 0x20
}

/// How often each folded byte occurs in evidence text, roughly: English
/// letter frequencies, spaces, digits and JSON punctuation. It only decides
/// which keywords share a bucket, never which occurrences are found.
fn byte_weights() -> [f64; 128] {
    const LETTERS: &[u8; 26] = b"etaoinshrdlcumwfgypbvkjxqz";
    const PER_MILLE: [f64; 26] = [
        127.0, 91.0, 82.0, 75.0, 70.0, 67.0, 63.0, 61.0, 60.0, 43.0, 40.0, 28.0, 28.0, 24.0, 24.0,
        22.0, 20.0, 20.0, 19.0, 15.0, 10.0, 8.0, 2.0, 2.0, 1.0, 1.0,
    ];
    let mut w = [2.0; 128];
    for (&c, &f) in LETTERS.iter().zip(&PER_MILLE) {
        w[usize::from(c)] = f * 0.8;
    }
    w[usize::from(b' ')] = 150.0;
    for c in b'0'..=b'9' {
        w[usize::from(c)] = 8.0;
    }
    for &c in b"\":,{}/-_." {
        w[usize::from(fold(c) & 0x7f)] += 10.0;
    }
    let total: f64 = w.iter().sum();
    w.map(|x| x / total)
}

impl Buckets {
    /// Whether the SIMD candidate search runs: this CPU has it and
    /// `AGENT_BOM_PORTABLE_SCAN` is unset (benchmarks set it to measure the
    /// DFA on the same machine; the hits are the same either way).
    fn supported() -> bool {
        std::env::var_os("AGENT_BOM_PORTABLE_SCAN").is_none() && Buckets::cpu_has_simd()
    }

    fn cpu_has_simd() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vbmi")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// `None` when a keyword's first bytes are not all ASCII (the tables are
    /// indexed by seven bits).
    fn new(keywords: &[Vec<u8>]) -> Option<Buckets> {
        if keywords
            .iter()
            .any(|k| k.is_empty() || !k[..k.len().min(PREFIX_LEN)].is_ascii())
        {
            return None;
        }
        let weights = byte_weights();
        // How likely a bucket is to pass a text position: the product over
        // offsets of the weight of the bytes its keywords allow there (all of
        // them, once one of its keywords has ended).
        let pass = |members: &[usize]| -> f64 {
            if members.is_empty() {
                return 0.0;
            }
            (0..PREFIX_LEN)
                .map(|k| {
                    if members.iter().any(|&m| keywords[m].len() <= k) {
                        return 1.0;
                    }
                    let mut allowed = [false; 128];
                    for &m in members {
                        allowed[usize::from(fold(keywords[m][k]) & 0x7f)] = true;
                    }
                    allowed
                        .iter()
                        .zip(&weights)
                        .filter(|(a, _)| **a)
                        .map(|(_, w)| w)
                        .sum()
                })
                .product()
        };
        // Greedy: the most frequent keywords first, each into the bucket it
        // makes least likely to pass.
        let mut order: Vec<usize> = (0..keywords.len()).collect();
        order.sort_by(|&a, &b| pass(&[b]).total_cmp(&pass(&[a])));
        let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); BUCKETS];
        for m in order {
            let cost = |b: &Vec<usize>| {
                let mut with = b.clone();
                with.push(m);
                pass(&with) - pass(b)
            };
            let best = (0..BUCKETS)
                .min_by(|&x, &y| cost(&buckets[x]).total_cmp(&cost(&buckets[y])))
                .unwrap_or(0);
            buckets[best].push(m);
        }
        let mut tables: Tables = [[[0; 128]; 2]; PREFIX_LEN];
        for (b, ms) in buckets.iter().enumerate() {
            let (half, bit) = (b / 8, 1u8 << (b % 8));
            for (k, table) in tables.iter_mut().enumerate() {
                let wild = ms.iter().any(|&m| keywords[m].len() <= k);
                for &m in ms.iter().filter(|_| !wild) {
                    table[half][usize::from(fold(keywords[m][k]) & 0x7f)] |= bit;
                }
                if wild {
                    table[half].iter_mut().for_each(|t| *t |= bit);
                }
            }
        }
        Some(Buckets {
            tables,
            prefixes: Prefixes::new(keywords)?,
            keywords: keywords.to_vec(),
            simd: Buckets::cpu_has_simd(),
        })
    }

    /// Keyword occurrences, and with `DIGITS` the digit mask (see `KeywordScanner::scan_line`).
    fn scan<const DIGITS: bool>(&self, text: &[u8], hits: &mut Vec<Hit>, digits: &mut Vec<u64>) {
        let mut verify = |p: usize| self.verify(text, p, hits);
        #[cfg(target_arch = "x86_64")]
        if self.simd {
            digits.clear();
            // SAFETY: `simd` is only set where `supported()` found the features.
            unsafe { avx512::candidates::<DIGITS>(&self.tables, text, &mut verify, digits) };
            return;
        }
        self.candidates(text, &mut verify);
        if DIGITS {
            digit_mask(text, digits);
        }
    }

    /// The candidate search one position at a time: what the SIMD search
    /// computes, bytes past the end read as zero. A non-ASCII byte is looked
    /// up by its low seven bits, which can only add candidates.
    fn candidates(&self, text: &[u8], each: &mut impl FnMut(usize)) {
        for p in 0..text.len() {
            let mut admitted = u16::MAX;
            for (k, table) in self.tables.iter().enumerate() {
                let c = text.get(p + k).copied().unwrap_or(0);
                let i = usize::from(fold(c) & 0x7f);
                admitted &= u16::from(table[0][i]) | u16::from(table[1][i]) << 8;
            }
            if admitted != 0 {
                each(p);
            }
        }
    }

    /// Pushes the keywords that occur at `p`.
    #[inline(always)]
    fn verify(&self, text: &[u8], p: usize, hits: &mut Vec<Hit>) {
        let word = match text.get(p..p + 4) {
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
            _ => {
                let mut word = [0u8; 4];
                for (w, &c) in word.iter_mut().zip(&text[p..]) {
                    *w = c;
                }
                u32::from_le_bytes(word)
            }
        } | 0x2020_2020;
        self.prefixes.each_at(word, |k| {
            let kw = &self.keywords[k];
            if text
                .get(p..p + kw.len())
                .is_some_and(|t| t.eq_ignore_ascii_case(kw))
            {
                hits.push((p, p + kw.len(), k));
            }
        });
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Tables, PREFIX_LEN};
    use std::arch::x86_64::*;

    /// Bytes `at..at + 64` of `text`, zero past its end.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn load_tail(text: &[u8], at: usize) -> __m512i {
        let n = text.len();
        if at >= n {
            return _mm512_setzero_si512();
        }
        let keep = u64::MAX >> 64usize.saturating_sub(n - at);
        // SAFETY: masked-off lanes are not read; the others lie inside `text`.
        unsafe { _mm512_maskz_loadu_epi8(keep, text.as_ptr().add(at).cast()) }
    }

    /// Calls `each(position)` where `Buckets::candidates` would, 64 positions
    /// at a time: for each offset, one load, a fold and a 128-entry lookup per
    /// half of the buckets (`vpermi2b`). A non-ASCII byte is looked up by its
    /// low seven bits, which can only add candidates.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) fn candidates<const DIGITS: bool>(
        tables: &Tables,
        text: &[u8],
        each: &mut impl FnMut(usize),
        digits: &mut Vec<u64>,
    ) {
        let zero = _mm512_setzero_si512();
        let (mut lo, mut hi) = ([[zero; 2]; PREFIX_LEN], [[zero; 2]; PREFIX_LEN]);
        for k in 0..PREFIX_LEN {
            for h in 0..2 {
                // SAFETY: each table is 128 bytes: two loads of 64.
                unsafe {
                    lo[k][h] = _mm512_loadu_si512(tables[k][h].as_ptr().cast());
                    hi[k][h] = _mm512_loadu_si512(tables[k][h][64..].as_ptr().cast());
                }
            }
        }
        let case = _mm512_set1_epi8(0x20);
        let (zero_char, ten) = (_mm512_set1_epi8(b'0' as i8), _mm512_set1_epi8(10));
        // The positions of a block some bucket admits, from `bytes[k]`, the
        // block's bytes at offset k; with `DIGITS`, its digit bits go to
        // `digits` (bytes past the end are zero: no digits).
        let mut admitted = |bytes: [__m512i; PREFIX_LEN]| -> u64 {
            if DIGITS {
                digits.push(_mm512_cmplt_epu8_mask(
                    _mm512_sub_epi8(bytes[0], zero_char),
                    ten,
                ));
            }
            let (mut a0, mut a1) = (_mm512_set1_epi8(-1), _mm512_set1_epi8(-1));
            for k in 0..PREFIX_LEN {
                let folded = _mm512_or_si512(bytes[k], case);
                a0 = _mm512_and_si512(a0, _mm512_permutex2var_epi8(lo[k][0], folded, hi[k][0]));
                a1 = _mm512_and_si512(a1, _mm512_permutex2var_epi8(lo[k][1], folded, hi[k][1]));
            }
            let any = _mm512_or_si512(a0, a1);
            _mm512_test_epi8_mask(any, any)
        };
        let n = text.len();
        // Candidates are gathered for up to 16 blocks, then handed out: the
        // SIMD loop itself has no branch that depends on the text.
        let mut found = [0u64; 16];
        let mut flush = |found: &mut [u64; 16], blocks: usize, first: usize| {
            for (b, mask) in found[..blocks].iter_mut().enumerate() {
                while *mask != 0 {
                    each(first + 64 * b + mask.trailing_zeros() as usize);
                    *mask &= *mask - 1;
                }
            }
        };
        let (mut i, mut start, mut blocks) = (0, 0, 0);
        // Whole blocks: every offset's 64 bytes lie inside the text.
        while i + 64 + PREFIX_LEN - 1 <= n {
            let mut bytes = [zero; PREFIX_LEN];
            for (k, b) in bytes.iter_mut().enumerate() {
                // SAFETY: i + k + 64 <= n.
                *b = unsafe { _mm512_loadu_si512(text.as_ptr().add(i + k).cast()) };
            }
            found[blocks] = admitted(bytes);
            blocks += 1;
            i += 64;
            if blocks == found.len() {
                flush(&mut found, blocks, start);
                (start, blocks) = (i, 0);
            }
        }
        flush(&mut found, blocks, start);
        while i < n {
            let mut bytes = [zero; PREFIX_LEN];
            for (k, b) in bytes.iter_mut().enumerate() {
                *b = load_tail(text, i + k);
            }
            found[0] = admitted(bytes) & (u64::MAX >> 64usize.saturating_sub(n - i));
            flush(&mut found, 1, i);
            i += 64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// Every occurrence, by comparing each keyword at each position.
    fn plain(keywords: &[Vec<u8>], text: &[u8]) -> Vec<Hit> {
        let mut expected = Vec::new();
        for start in 0..text.len() {
            for (k, kw) in keywords.iter().enumerate() {
                let t = text.get(start..start + kw.len());
                if t.is_some_and(|t| t.eq_ignore_ascii_case(kw)) {
                    expected.push((start, start + kw.len(), k));
                }
            }
        }
        sorted(expected)
    }

    fn sorted(mut hits: Vec<Hit>) -> Vec<Hit> {
        hits.sort_unstable();
        hits.dedup();
        hits
    }

    /// Each engine this machine runs, by name, with what it found in `text`.
    fn engines(keywords: &[Vec<u8>], text: &[u8]) -> Vec<(&'static str, Vec<Hit>)> {
        let dfa = Dfa::new(keywords.to_vec()).unwrap();
        let mut buckets = Buckets::new(keywords).unwrap();
        let mut out = Vec::new();
        let mut found = Vec::new();
        dfa.scan(text, &mut found);
        out.push(("dfa", sorted(std::mem::take(&mut found))));
        let simd = buckets.simd;
        buckets.simd = false;
        buckets.scan::<false>(text, &mut found, &mut Vec::new());
        out.push(("buckets", sorted(std::mem::take(&mut found))));
        if simd {
            buckets.simd = true;
            buckets.scan::<false>(text, &mut found, &mut Vec::new());
            out.push(("buckets, avx-512", sorted(found)));
        }
        out
    }

    fn shipped_keywords() -> Vec<Vec<u8>> {
        let rules = std::fs::read("python/agent_bom/data/redaction-rules.json").unwrap();
        let doc = crate::json::parse(&rules, 16).unwrap();
        let mut keywords: Vec<Vec<u8>> = Vec::new();
        let Some(crate::json::Value::Array(rules)) = doc.get("rules") else {
            panic!("no rules")
        };
        for rule in rules {
            if let Some(crate::json::Value::Array(ks)) = rule.get("keywords") {
                for k in ks {
                    let k = k.as_str().unwrap().to_ascii_lowercase().into_bytes();
                    if !keywords.contains(&k) {
                        keywords.push(k);
                    }
                }
            }
        }
        keywords
    }

    #[test]
    fn every_engine_finds_what_a_plain_search_finds() {
        let small: Vec<Vec<u8>> = [
            "ghp_",
            "secret",
            "secretkey",
            "@",
            "sk",
            "://",
            "private key",
        ]
        .iter()
        .map(|k| k.as_bytes().to_vec())
        .collect();
        let shipped = shipped_keywords();
        assert!(shipped.len() > 100);
        let mut pieces: Vec<Vec<u8>> = [
            "GHP_",
            "Secret",
            "secretKEY",
            "@",
            "sK",
            "://",
            "private key",
            "x",
            " ",
            "se",
            "`",
            "Bearer ",
            "AKIA",
            "xoxb-",
            "github.com",
            "eyJ",
            "\\u0041",
            "é",
            "ſ",
            "\u{212a}",
        ]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
        // Bytes a seven-bit table would confuse with ASCII: '@' | 0x80, 's' | 0x80, ...
        pieces.extend([
            vec![0xc0],
            vec![0xf3, 0x8b],
            vec![0xe0, 0xa0, 0xb1],
            vec![0xff, b'k'],
        ]);
        pieces.extend(shipped.iter().cloned());
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for keywords in [&small, &shipped] {
            for len in [
                0, 1, 3, 4, 63, 64, 65, 66, 67, 127, 128, 131, 255, 256, 257, 300, 1024, 4099,
            ] {
                for _ in 0..4 {
                    let mut text = Vec::new();
                    while text.len() < len {
                        let p = &pieces[(xorshift(&mut x) % pieces.len() as u64) as usize];
                        text.extend_from_slice(p);
                    }
                    text.truncate(len);
                    let expected = plain(keywords, &text);
                    for (engine, found) in engines(keywords, &text) {
                        assert_eq!(found, expected, "{engine}, {len} bytes: {text:?}");
                    }
                }
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn simd_candidates_and_digits_are_the_portable_ones() {
        let keywords = shipped_keywords();
        let mut buckets = Buckets::new(&keywords).unwrap();
        if !buckets.simd {
            eprintln!("no AVX-512 VBMI here: only the portable engine is tested");
            return;
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in (0..200).chain([255, 256, 511, 512, 513, 1000, 4096]) {
            // Random bytes, biased towards the keywords' letters.
            let alphabet = b"skSK_-@:/.aeghpotrwy0123456789 \x80\xc0\xff";
            let text: Vec<u8> = (0..len)
                .map(|_| match xorshift(&mut x) % 5 {
                    0 => xorshift(&mut x) as u8,
                    _ => alphabet[(xorshift(&mut x) % alphabet.len() as u64) as usize],
                })
                .collect();
            let (mut portable, mut simd) = (Vec::new(), Vec::new());
            buckets.candidates(&text, &mut |p| portable.push(p));
            let mut digits = Vec::new();
            // SAFETY: `simd` says this CPU has the features.
            unsafe {
                avx512::candidates::<true>(
                    &buckets.tables,
                    &text,
                    &mut |p| simd.push(p),
                    &mut digits,
                )
            };
            assert_eq!(simd, portable, "{text:?}");
            let mut expected = Vec::new();
            digit_mask(&text, &mut expected);
            assert_eq!(digits, expected, "{text:?}");
            buckets.simd = false;
            let (mut hits, mut digits) = (Vec::new(), Vec::new());
            buckets.scan::<true>(&text, &mut hits, &mut digits);
            assert_eq!(digits, expected);
            buckets.simd = true;
        }
    }

    #[test]
    fn digit_counts_over_any_range_are_exact() {
        let text: Vec<u8> = (0..300u32)
            .map(|i| if (i * 7 + i / 5) % 3 == 0 { b'7' } else { b'x' })
            .collect();
        let mut mask = Vec::new();
        digit_mask(&text, &mut mask);
        for from in 0..=text.len() {
            for to in from..=text.len() {
                let expected = text[from..to].iter().filter(|c| c.is_ascii_digit()).count();
                assert_eq!(count_in(&mask, from, to), expected, "{from}..{to}");
            }
        }
    }

    #[test]
    fn non_ascii_keywords_leave_the_buckets_for_the_dfa() {
        // The buckets test a keyword's first four bytes: those must be ASCII.
        let keywords = vec!["ñandú".as_bytes().to_vec(), b"sk".to_vec()];
        assert!(Buckets::new(&keywords).is_none());
        let scanner = KeywordScanner::new(keywords.clone()).unwrap();
        assert!(scanner.buckets.is_none());
        let text = "un ÑANDú y sk".as_bytes();
        let mut hits = Vec::new();
        scanner.scan(text, &mut hits);
        assert_eq!(sorted(hits), plain(&keywords, text));
        assert_eq!(plain(&keywords, text).len(), 1, "ñ has no ASCII case");
        // Past the first four bytes anything goes.
        let keywords = vec!["contraseña".as_bytes().to_vec(), b"@".to_vec()];
        let text = "la CONTRASEña, la contraseña, @\u{e9}".as_bytes();
        for (engine, found) in engines(&keywords, text) {
            assert_eq!(found, plain(&keywords, text), "{engine}");
        }
    }
}
