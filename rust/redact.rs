//! Redaction (DESIGN §5): sensitive member names and value rules, applied to
//! the parsed event before anything is hashed.
//!
//! Rules are data (`python/agent_bom/data/redaction-rules.json`, read by
//! Python and handed over as bytes). Clean events pay little: one
//! Aho-Corasick pass over the raw line finds which rules' keywords occur at
//! all; a string is searched only for the rules whose keywords it holds
//! (followed, for rules with `keyword_followed_by`, by what their regex needs
//! next) and, for keyword-less rules such as card numbers, only when it has
//! their digit shape; member names are filtered by their last three
//! normalized letters before the full check. A rule's regex runs only where
//! its matches can lie (`Reach`, read from the regex): anchored at its
//! keyword occurrences when every match starts with a keyword, near the
//! digits when every match holds one and is bounded in length, else over
//! the whole string. A rule's `secret` group is read off each match by two
//! small DFAs on either side of it (`SecretSplit`) where they settle it,
//! else by the capture engine over the match alone.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::OnceLock;

use hmac::{KeyInit, Mac};
use regex::Regex;
use regex_automata::dfa::{dense, Automaton};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{meta, Anchored, Input, Match, Span};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Class, Hir, HirKind};

use crate::canon;
use crate::digest::push_hex;
use crate::json::{self, Value};
use crate::keywords::{self, Hit, KeywordScanner, PREFIX_LEN};

pub const KEY_RULE_ID: &str = "sensitive-key";
const MARKER_PREFIX: &str = "[REDACTED:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checksum {
    Luhn,
    Iban,
    Ssn,
}

struct Rule {
    id: String,
    regex: meta::Regex,
    /// Index of the `secret` capture group, when the rule marks one.
    secret: Option<usize>,
    entropy: Option<f64>,
    checksum: Option<Checksum>,
    /// Keyword-less rules run only on strings with at least this many digits.
    min_digits: usize,
    /// What must follow a keyword for the occurrence to count.
    keyword_followed_by: Option<Follower>,
    reach: Reach,
    /// The parsed pattern, for the automata below.
    hir: Hir,
    /// How the `secret` group is read off a match without a capture engine.
    /// Built on first use (as is `at_keyword`): rules that never fire cost
    /// no start-up time.
    split: OnceLock<Option<SecretSplit>>,
    /// For `Reach::AtKeyword`, the regex as a fully compiled DFA anchored at
    /// the keyword: no cache to fetch per search, which matters at a few
    /// dozen bytes a search. `None` past the size limit.
    at_keyword: OnceLock<Option<dense::DFA<Vec<u32>>>>,
}

impl Rule {
    fn split(&self) -> Option<&SecretSplit> {
        self.split
            .get_or_init(|| self.secret.and_then(|g| SecretSplit::of(&self.hir, g)))
            .as_ref()
    }

    fn at_keyword(&self) -> Option<&dense::DFA<Vec<u32>>> {
        self.at_keyword
            .get_or_init(|| {
                (self.reach == Reach::AtKeyword
                    // An empty match would need the regex's UTF-8 handling.
                    && self.hir.properties().minimum_len().is_some_and(|n| n > 0))
                .then(|| anchored_dfa(&self.hir, false, regex_automata::MatchKind::LeftmostFirst))
                .flatten()
            })
            .as_ref()
    }
}

/// `hir` as a fully compiled DFA (leftmost-first) for anchored searches, if
/// it stays under the size limit. A Unicode `\b` makes it quit on non-ASCII
/// bytes, where the caller falls back to the regex.
fn anchored_dfa(
    hir: &Hir,
    reverse: bool,
    kind: regex_automata::MatchKind,
) -> Option<dense::DFA<Vec<u32>>> {
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new()
                .reverse(reverse)
                .which_captures(thompson::WhichCaptures::None),
        )
        .build_from_hir(hir)
        .ok()?;
    dense::Builder::new()
        .configure(
            dense::Config::new()
                .start_kind(regex_automata::dfa::StartKind::Anchored)
                .match_kind(kind)
                .unicode_word_boundary(true)
                .dfa_size_limit(Some(1 << 20))
                .determinize_size_limit(Some(1 << 20)),
        )
        .build_from_nfa(&nfa)
        .ok()
}

/// Where a rule's `secret` group lies in a match already found, read with
/// two small DFAs instead of a capture engine over the match (which costs
/// several times the search). The regex is `before (?P<secret>…) after` at
/// its top level, so every parse of the match is a prefix in `before`, the
/// group, then a suffix in `after`. When the match has exactly one such
/// prefix and exactly one such suffix, the group is what lies between, as
/// the capture engine would report it; otherwise the capture engine decides.
struct SecretSplit {
    /// Anchored forward DFA reporting every match (`MatchKind::All`); `None`
    /// when `before` is zero-width and the group starts where the match does.
    before: Option<dense::DFA<Vec<u32>>>,
    /// The same for `after`, reversed, run back from the match's end.
    after: Option<dense::DFA<Vec<u32>>>,
}

impl SecretSplit {
    /// `None` unless the group with index `g` is one of the regex's top-level
    /// parts, and each side is zero-width or compiles to a small DFA.
    fn of(hir: &Hir, g: usize) -> Option<SecretSplit> {
        let parts = match hir.kind() {
            HirKind::Concat(parts) => parts.as_slice(),
            HirKind::Capture(_) => std::slice::from_ref(hir),
            _ => return None,
        };
        let at = parts.iter().position(
            |p| matches!(p.kind(), HirKind::Capture(c) if usize::try_from(c.index).ok() == Some(g)),
        )?;
        let side = |parts: &[Hir], reverse: bool| -> Option<Option<dense::DFA<Vec<u32>>>> {
            let hir = Hir::concat(parts.to_vec());
            if hir.properties().maximum_len() == Some(0) {
                return Some(None);
            }
            anchored_dfa(&hir, reverse, regex_automata::MatchKind::All).map(Some)
        };
        Some(SecretSplit {
            before: side(&parts[..at], false)?,
            after: side(&parts[at + 1..], true)?,
        })
    }

    /// The group's span inside `whole`, a match of the rule in `hay`, when
    /// its bounds are the only ones possible.
    fn find(&self, hay: &[u8], whole: Span) -> Option<Span> {
        let input = Input::new(hay).span(whole).anchored(Anchored::Yes);
        let start = match &self.before {
            None => whole.start,
            Some(dfa) => {
                let shortest = dfa.try_search_fwd(&input.clone().earliest(true)).ok()??;
                let longest = dfa.try_search_fwd(&input).ok()??;
                (shortest == longest).then_some(shortest.offset())?
            }
        };
        let end = match &self.after {
            None => whole.end,
            Some(dfa) => {
                let shortest = dfa.try_search_rev(&input.clone().earliest(true)).ok()??;
                let longest = dfa.try_search_rev(&input).ok()??;
                (shortest == longest).then_some(shortest.offset())?
            }
        };
        (start <= end).then_some(Span { start, end })
    }
}

/// Where a rule's matches can lie, read from its regex: searching only there
/// finds exactly the matches a search over the whole string finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Anywhere,
    /// Every match starts with one of the rule's keywords: searched anchored
    /// at their occurrences, not across the string.
    AtKeyword,
    /// Every match holds a digit and is at most this many bytes long:
    /// searched only that close to digits.
    NearDigits(usize),
}

/// A rule's `keyword_followed_by`: a regex anchored where the keyword ends,
/// with the bytes its match can begin with, so most occurrences are turned
/// down without running it.
struct Follower {
    regex: Regex,
    /// The same pattern as a fully compiled DFA anchored where the keyword
    /// ends, when it compiles to one (no Unicode word boundary): no cache to
    /// fetch per check, which matters at a few bytes a check.
    dfa: Option<dense::DFA<Vec<u32>>>,
    /// `None` when the regex can match the empty string.
    first: Option<ByteSet>,
}

impl Follower {
    fn new(pattern: &str) -> Result<Follower, String> {
        let hir = syntax::parse_with(pattern, &syntax::Config::new().utf8(true))
            .map_err(|e| e.to_string())?;
        let regex = Regex::new(&format!("^(?:{pattern})")).map_err(|e| e.to_string())?;
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .start_kind(regex_automata::dfa::StartKind::Anchored)
                    .dfa_size_limit(Some(1 << 20)),
            )
            .syntax(syntax::Config::new().utf8(true))
            .build(pattern)
            .ok();
        let mut first = ByteSet::default();
        let nullable = first_bytes(&hir, &mut first);
        Ok(Follower {
            regex,
            dfa,
            first: (!nullable).then_some(first),
        })
    }

    fn is_match(&self, rest: &str) -> bool {
        if let Some(first) = &self.first {
            if !rest.as_bytes().first().is_some_and(|&b| first.contains(b)) {
                return false;
            }
        }
        match &self.dfa {
            Some(dfa) => {
                let input = Input::new(rest).anchored(Anchored::Yes).earliest(true);
                match dfa.try_search_fwd(&input) {
                    Ok(found) => found.is_some(),
                    // A DFA quits only on bytes it was told to; ours were not.
                    Err(_) => self.regex.is_match(rest),
                }
            }
            None => self.regex.is_match(rest),
        }
    }
}

#[derive(Default, Clone)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert_range(&mut self, lo: u8, hi: u8) {
        for b in lo..=hi {
            self.0[usize::from(b / 64)] |= 1 << (b % 64);
        }
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b / 64)] & (1 << (b % 64)) != 0
    }
}

/// Adds to `set` every byte a match of `hir` can begin with (a superset: a
/// class reaching past ASCII adds every UTF-8 lead byte); returns whether
/// `hir` can match the empty string, when what follows it may begin a match too.
fn first_bytes(hir: &Hir, set: &mut ByteSet) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => true,
        HirKind::Literal(l) => match l.0.first() {
            Some(&b) => {
                set.insert_range(b, b);
                false
            }
            None => true,
        },
        HirKind::Class(Class::Bytes(c)) => {
            for r in c.ranges() {
                set.insert_range(r.start(), r.end());
            }
            c.ranges().is_empty()
        }
        HirKind::Class(Class::Unicode(c)) => {
            for r in c.ranges() {
                let (lo, hi) = (u32::from(r.start()), u32::from(r.end()));
                if lo < 0x80 {
                    set.insert_range(lo as u8, hi.min(0x7f) as u8);
                }
                if hi >= 0x80 {
                    set.insert_range(0xc2, 0xf4);
                }
            }
            c.ranges().is_empty()
        }
        HirKind::Repetition(r) => first_bytes(&r.sub, set) || r.min == 0,
        HirKind::Capture(c) => first_bytes(&c.sub, set),
        HirKind::Concat(subs) => subs.iter().all(|sub| first_bytes(sub, set)),
        HirKind::Alternation(subs) => subs
            .iter()
            .fold(false, |nullable, sub| first_bytes(sub, set) | nullable),
    }
}

/// Compiled as `regex::Regex::new` compiles (same syntax, limits and match
/// semantics), with the parsed pattern for `Reach`.
fn compile(pattern: &str) -> Result<(meta::Regex, Hir), String> {
    let syntax = syntax::Config::new().utf8(true);
    let hir = syntax::parse_with(pattern, &syntax).map_err(|e| e.to_string())?;
    let regex = meta::Builder::new()
        .configure(
            meta::Config::new()
                .nfa_size_limit(Some(10 << 20))
                .hybrid_cache_capacity(2 << 20)
                .match_kind(regex_automata::MatchKind::LeftmostFirst)
                .utf8_empty(true),
        )
        .syntax(syntax)
        .build(pattern)
        .map_err(|e| e.to_string())?;
    Ok((regex, hir))
}

impl Reach {
    fn of(hir: &Hir, keywords: &[String], min_digits: usize) -> Reach {
        // A finite prefix set: every match begins with one of these literals.
        let prefixes = Extractor::new().kind(ExtractKind::Prefix).extract(hir);
        let starts_with_keyword = |lit: &[u8]| {
            keywords.iter().any(|k| {
                lit.get(..k.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(k.as_bytes()))
            })
        };
        let at_keyword = prefixes.literals().is_some_and(|lits| {
            !lits.is_empty() && lits.iter().all(|l| starts_with_keyword(l.as_bytes()))
        });
        if at_keyword {
            return Reach::AtKeyword;
        }
        match hir.properties().maximum_len() {
            Some(len) if min_digits > 0 && needs_digit(hir) => Reach::NearDigits(len),
            _ => Reach::Anywhere,
        }
    }
}

/// Whether every string `hir` matches holds an ASCII digit.
fn needs_digit(hir: &Hir) -> bool {
    let digits = |lo: u32, hi: u32| {
        (u32::from(b'0')..=u32::from(b'9')).contains(&lo)
            && (u32::from(b'0')..=u32::from(b'9')).contains(&hi)
    };
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => false,
        HirKind::Literal(l) => l.0.iter().any(u8::is_ascii_digit),
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .all(|r| digits(u32::from(r.start()), u32::from(r.end()))),
        HirKind::Class(Class::Bytes(c)) => c
            .ranges()
            .iter()
            .all(|r| digits(u32::from(r.start()), u32::from(r.end()))),
        HirKind::Repetition(r) => r.min >= 1 && needs_digit(&r.sub),
        HirKind::Capture(c) => needs_digit(&c.sub),
        HirKind::Concat(subs) => subs.iter().any(needs_digit),
        HirKind::Alternation(subs) => subs.iter().all(needs_digit),
    }
}

/// A compiled rule file (or several merged).
pub struct RuleSet {
    rules: Vec<Rule>,
    prefilter: Option<KeywordScanner>,
    /// Rules triggered by each keyword.
    pattern_rules: Vec<Vec<usize>>,
    digit_rules: Vec<usize>,
    min_digits: usize,
    keys: SensitiveNames,
}

#[derive(Clone)]
pub enum Mode {
    Mask,
    /// Keyed HMAC-SHA256 pseudonyms: stable for correlation, useless without the key.
    Hash(Vec<u8>),
}

/// Per-rule redaction counts; the last slot is the sensitive-key rule.
pub type RuleCounts = Vec<u64>;

fn field<'v>(v: &'v Value<'_>, key: &str) -> Option<&'v Value<'v>> {
    // Value<'a> is covariant: shortening the lifetime is free.
    v.get(key)
}

fn str_list(v: Option<&Value<'_>>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what} must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(format!("{what} must be a list of strings")),
    }
}

/// Whether a byte is left out when member names are compared: '_', '-', '.', ' '.
fn is_name_separator(c: u8) -> bool {
    matches!(c, b'_' | b'-' | b'.' | b' ')
}

/// The sensitive member names (DESIGN §5), compared with ASCII case and
/// separators ignored: a trie over their compared bytes, read from the end,
/// so most names are turned down within their last few letters. Its
/// transitions are one table lookup per byte.
struct SensitiveNames {
    /// Byte → its column (the same for both ASCII cases), `NO_COLUMN` for a
    /// byte no sensitive name holds, `SEPARATOR` for one names skip.
    columns: [u8; 256],
    width: usize,
    /// `next[node * width + column]`: the child, or 0 (the root is nobody's child).
    next: Vec<u32>,
    /// Per node: `SUFFIX` (a name ending with the bytes read so far is
    /// sensitive) and `EXACT` (a name that is exactly them is).
    flags: Vec<u8>,
}

const NO_COLUMN: u8 = 0;
const SEPARATOR: u8 = u8::MAX;
const SUFFIX: u8 = 1;
const EXACT: u8 = 2;

impl SensitiveNames {
    /// `names`: (name, whether it counts as a suffix).
    fn new<'n>(names: impl IntoIterator<Item = (&'n str, bool)>) -> Result<SensitiveNames, String> {
        let mut columns = [NO_COLUMN; 256];
        for c in (0..=u8::MAX).filter(|&c| is_name_separator(c)) {
            columns[usize::from(c)] = SEPARATOR;
        }
        let mut width = 1;
        let mut children: Vec<Vec<(u8, usize)>> = vec![Vec::new()];
        let mut flags = vec![0u8];
        for (name, suffix) in names {
            let mut node = 0;
            for c in name.bytes().rev().filter(|&c| !is_name_separator(c)) {
                let c = c.to_ascii_lowercase();
                if columns[usize::from(c)] == NO_COLUMN {
                    let column = u8::try_from(width)
                        .ok()
                        .filter(|&w| w < SEPARATOR)
                        .ok_or("sensitive_keys use too many distinct characters")?;
                    columns[usize::from(c)] = column;
                    columns[usize::from(c.to_ascii_uppercase())] = column;
                    width += 1;
                }
                node = match children[node].iter().find(|(b, _)| *b == c) {
                    Some(&(_, child)) => child,
                    None => {
                        children.push(Vec::new());
                        flags.push(0);
                        let child = children.len() - 1;
                        children[node].push((c, child));
                        child
                    }
                };
            }
            flags[node] |= if suffix { SUFFIX } else { EXACT };
        }
        let mut next = vec![0u32; children.len() * width];
        for (node, kids) in children.iter().enumerate() {
            for &(c, child) in kids {
                next[node * width + usize::from(columns[usize::from(c)])] =
                    u32::try_from(child).map_err(|_| "too many sensitive_keys")?;
            }
        }
        Ok(SensitiveNames {
            columns,
            width,
            next,
            flags,
        })
    }

    #[inline]
    fn contains(&self, name: &str) -> bool {
        let mut node = 0;
        for c in name.bytes().rev() {
            if self.flags[node] & SUFFIX != 0 {
                return true;
            }
            match self.columns[usize::from(c)] {
                SEPARATOR => continue,
                NO_COLUMN => return false,
                column => match self.next[node * self.width + usize::from(column)] {
                    0 => return false,
                    child => node = child as usize,
                },
            }
        }
        self.flags[node] != 0
    }
}

impl RuleSet {
    /// Compiles one or more rule files (JSON, see the rules file for the format); later files add rules.
    pub fn from_json(files: &[&[u8]]) -> Result<RuleSet, String> {
        let mut rules = Vec::new();
        let mut keywords: Vec<(String, usize)> = Vec::new();
        let mut names: Vec<(String, bool)> = Vec::new();
        let mut seen_ids = HashSet::new();
        for (n, data) in files.iter().enumerate() {
            let doc = json::parse(data, 16)
                .map_err(|e| format!("rules file {}: not valid JSON: {e}", n + 1))?;
            if let Some(keys) = field(&doc, "sensitive_keys") {
                for k in str_list(field(keys, "exact"), "sensitive_keys.exact")? {
                    names.push((k, false));
                }
                for k in str_list(field(keys, "suffix"), "sensitive_keys.suffix")? {
                    names.push((k, true));
                }
            }
            let Some(Value::Array(items)) = field(&doc, "rules") else {
                return Err(format!("rules file {}: needs a \"rules\" list", n + 1));
            };
            for (i, item) in items.iter().enumerate() {
                let id = field(item, "id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("rules file {}: rule {i} has no string \"id\"", n + 1))?
                    .to_string();
                if id.is_empty() || !id.bytes().all(is_rule_id_byte) {
                    return Err(format!(
                        "rule id {id:?} must be lowercase letters, digits and '-' (it appears in markers)"
                    ));
                }
                if id == KEY_RULE_ID || !seen_ids.insert(id.clone()) {
                    return Err(format!(
                        "rule id {id:?} is used twice (or is reserved); give each rule its own id"
                    ));
                }
                let pattern = field(item, "regex")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("rule {id:?}: needs a string \"regex\""))?;
                let (regex, hir) = compile(pattern)
                    .map_err(|e| format!("rule {id:?}: regex does not compile: {e}"))?;
                let secret = regex
                    .group_info()
                    .to_index(regex_automata::PatternID::ZERO, "secret");
                let entropy = match field(item, "entropy") {
                    None => None,
                    Some(Value::Number(x)) => Some(*x),
                    Some(_) => {
                        return Err(format!(
                            "rule {id:?}: \"entropy\" must be a number (bits per character)"
                        ))
                    }
                };
                let checksum = match field(item, "checksum").map(|c| c.as_str()) {
                    None => None,
                    Some(Some("luhn")) => Some(Checksum::Luhn),
                    Some(Some("iban")) => Some(Checksum::Iban),
                    Some(Some("ssn")) => Some(Checksum::Ssn),
                    Some(_) => {
                        return Err(format!(
                            "rule {id:?}: \"checksum\" must be luhn, iban or ssn"
                        ))
                    }
                };
                let kws = str_list(field(item, "keywords"), &format!("rule {id:?}: keywords"))?;
                let keyword_followed_by = match field(item, "keyword_followed_by") {
                    None => None,
                    Some(Value::String(p)) if !kws.is_empty() => {
                        Some(Follower::new(p).map_err(|e| {
                            format!("rule {id:?}: keyword_followed_by does not compile: {e}")
                        })?)
                    }
                    Some(_) => {
                        return Err(format!(
                            "rule {id:?}: \"keyword_followed_by\" must be a regex string, \
                             and the rule needs \"keywords\" for it to follow"
                        ))
                    }
                };
                let min_digits = match field(item, "min_digits") {
                    Some(Value::Number(x)) if *x >= 1.0 => *x as usize,
                    None if !kws.is_empty() => 0,
                    _ => {
                        return Err(format!(
                        "rule {id:?}: give it \"keywords\" (a prefilter) or \"min_digits\" ≥ 1, \
                             so clean text is not searched with it"
                    ))
                    }
                };
                let idx = rules.len();
                let reach = Reach::of(&hir, &kws, min_digits);
                for k in kws {
                    if k.is_empty() {
                        return Err(format!("rule {id:?}: empty keyword"));
                    }
                    keywords.push((k.to_ascii_lowercase(), idx));
                }
                rules.push(Rule {
                    id,
                    regex,
                    secret,
                    entropy,
                    checksum,
                    min_digits,
                    keyword_followed_by,
                    reach,
                    hir,
                    split: OnceLock::new(),
                    at_keyword: OnceLock::new(),
                });
            }
        }
        let mut patterns: Vec<String> = Vec::new();
        let mut pattern_rules: Vec<Vec<usize>> = Vec::new();
        for (k, idx) in keywords {
            match patterns.iter().position(|p| *p == k) {
                Some(p) => pattern_rules[p].push(idx),
                None => {
                    patterns.push(k);
                    pattern_rules.push(vec![idx]);
                }
            }
        }
        let keyword_count = patterns.len();
        // Without its automaton no keyword rule would ever run: refuse the set instead.
        let prefilter = match keyword_count {
            0 => None,
            _ => Some(
                KeywordScanner::new(patterns.into_iter().map(String::into_bytes).collect())
                    .ok_or_else(|| {
                        format!(
                            "the rules' {keyword_count} distinct keywords are too many for the \
                             keyword prefilter (its automaton over their first {PREFIX_LEN} \
                             bytes is limited to {} cells): give rules fewer, longer or shared \
                             keywords",
                            1 << 16
                        )
                    })?,
            ),
        };
        let digit_rules: Vec<usize> = (0..rules.len())
            .filter(|&i| rules[i].min_digits > 0)
            .collect();
        let min_digits = digit_rules
            .iter()
            .map(|&i| rules[i].min_digits)
            .min()
            .unwrap_or(usize::MAX);
        let keys = SensitiveNames::new(names.iter().map(|(k, suffix)| (k.as_str(), *suffix)))?;
        Ok(RuleSet {
            rules,
            prefilter,
            pattern_rules,
            digit_rules,
            min_digits,
            keys,
        })
    }

    pub fn rule_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.rules.iter().map(|r| r.id.clone()).collect();
        ids.push(KEY_RULE_ID.to_string());
        ids
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    #[inline]
    fn is_sensitive_key(&self, k: &str) -> bool {
        self.keys.contains(k)
    }
}

/// A rule set and a mode: what the pipeline's redaction stage runs.
pub struct Redactor {
    set: RuleSet,
    mode: Mode,
}

/// Length of the exact marker starting at byte `i` of `s`, if one does:
/// `[REDACTED:<rule-id>]` or `[REDACTED:<rule-id>:<16 lowercase hex>]`.
/// Anything less exact is ordinary text and gets scanned like any other.
fn marker_len_at(s: &str, i: usize) -> Option<usize> {
    let b = s.as_bytes();
    let rest = b.get(i..)?.strip_prefix(MARKER_PREFIX.as_bytes())?;
    let id = rest.iter().take_while(|c| is_rule_id_byte(**c)).count();
    if id == 0 {
        return None;
    }
    let mut j = id;
    if rest.get(j) == Some(&b':') {
        let hex = &rest.get(j + 1..j + 17)?;
        if !hex
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        {
            return None;
        }
        j += 17;
    }
    (rest.get(j) == Some(&b']')).then_some(MARKER_PREFIX.len() + j + 1)
}

fn is_rule_id_byte(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'
}

fn is_marker(s: &str) -> bool {
    marker_len_at(s, 0) == Some(s.len())
}

/// Shannon entropy in bits per character: with n characters and c_i of each
/// kind, log2(n) - Σ c_i·log2(c_i) / n, where characters seen once add nothing
/// (secrets are mostly such, so few logarithms are taken).
fn shannon_entropy(s: &str) -> f64 {
    // c·log2(c) for small counts, computed once (the same values, so the same sums).
    static C_LOG2_C: std::sync::LazyLock<[f64; 256]> =
        std::sync::LazyLock::new(|| std::array::from_fn(|c| (c as f64) * (c as f64).log2()));
    let table = &*C_LOG2_C;
    let term = |c: u32| match table.get(c as usize) {
        Some(&x) => x,
        None => f64::from(c) * f64::from(c).log2(),
    };
    let sum_repeated = |counts: &mut dyn Iterator<Item = u32>| {
        counts
            .filter(|&c| c > 1)
            .map(term)
            .fold(0.0, |sum, t| sum + t)
    };
    // Only characters seen twice or more add a term, in ascending character
    // order, so the sum is the same in every run.
    if s.is_ascii() && s.len() <= usize::from(u8::MAX) {
        // Byte counts, read eight at a time: most words are all zero or one.
        let mut counts = [0u8; 128];
        for c in s.bytes() {
            counts[usize::from(c & 0x7f)] += 1;
        }
        const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        let mut repeated = 0.0;
        for (w, word) in counts.chunks_exact(8).enumerate() {
            let twice =
                u64::from_le_bytes(word.try_into().unwrap_or_default()) & !0x0101_0101_0101_0101;
            // The high bit of each byte whose count is 2 or more.
            let mut high = (((twice & LOW7) + LOW7) | twice) & !LOW7;
            while high != 0 {
                let at = w * 8 + high.trailing_zeros() as usize / 8;
                repeated += term(u32::from(counts[at]));
                high &= high - 1;
            }
        }
        return (s.len().max(1) as f64).log2() - repeated / s.len().max(1) as f64;
    }
    if s.is_ascii() {
        let mut counts = [0u32; 128];
        for c in s.bytes() {
            counts[usize::from(c & 0x7f)] += 1;
        }
        return (s.len() as f64).log2() - sum_repeated(&mut counts.into_iter()) / s.len() as f64;
    }
    let n = s.chars().count().max(1) as f64;
    let mut counts: std::collections::BTreeMap<char, u32> = std::collections::BTreeMap::new();
    for c in s.chars() {
        *counts.entry(c).or_insert(0) += 1;
    }
    n.log2() - sum_repeated(&mut counts.into_values()) / n
}

fn luhn_ok(s: &str) -> bool {
    let digits: Vec<u32> = s
        .bytes()
        .filter(|c| c.is_ascii_digit())
        .map(|c| (c - b'0') as u32)
        .collect();
    if !(13..=19).contains(&digits.len())
        || s.bytes()
            .any(|c| !(c.is_ascii_digit() || c == b' ' || c == b'-'))
    {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn iban_ok(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|c| *c != b' ').collect();
    if !(15..=34).contains(&compact.len())
        || !compact[..2].iter().all(u8::is_ascii_uppercase)
        || !compact[2..4].iter().all(u8::is_ascii_digit)
        || !compact.iter().all(u8::is_ascii_alphanumeric)
    {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in compact[4..].iter().chain(&compact[..4]) {
        let v = if c.is_ascii_digit() {
            (c - b'0') as u32
        } else {
            (c.to_ascii_uppercase() - b'A') as u32 + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn ssn_ok(s: &str) -> bool {
    if s.bytes()
        .any(|c| !(c.is_ascii_digit() || c == b' ' || c == b'-'))
    {
        return false;
    }
    let d: Vec<u8> = s.bytes().filter(u8::is_ascii_digit).collect();
    if d.len() != 9 {
        return false;
    }
    let area = &d[0..3];
    area != b"000" && area != b"666" && area[0] != b'9' && &d[3..5] != b"00" && &d[5..9] != b"0000"
}

/// What `candidate_rules` found for a string.
#[derive(Default)]
struct Candidates {
    /// Rule indexes, sorted.
    rules: Vec<usize>,
    /// For `Reach::AtKeyword` rules, where their keyword occurrences start, as (rule, start), sorted.
    starts: Vec<(usize, usize)>,
    /// The string's digit shape, when it was worth taking.
    shape: Option<DigitShape>,
}

/// Each thread's buffers for `Line`, kept from one line to the next.
type Scratch = (Vec<Hit>, Vec<u64>, Vec<u64>);

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// The raw line an event was parsed from, with its keyword hits.
struct Line<'r> {
    raw: &'r [u8],
    hits: Vec<Hit>,
    /// Where the line's ASCII digits are (`keywords::digit_mask`).
    digits: Vec<u64>,
    /// Where its keyword hits start, laid out as `digits`.
    starts: Vec<u64>,
}

impl Line<'_> {
    /// Where `s` lies in the raw line, if the parser borrowed it from there.
    fn span_of(&self, s: &str) -> Option<(usize, usize)> {
        let (base, p) = (self.raw.as_ptr() as usize, s.as_ptr() as usize);
        (p >= base && p + s.len() <= base + self.raw.len()).then(|| (p - base, p - base + s.len()))
    }

    /// Whether `s`, borrowed from the line, holds no keyword hit and fewer
    /// than `min_digits` digits: no rule can match it (most strings).
    #[inline(always)]
    fn quiet(&self, s: &str, min_digits: usize) -> bool {
        let Some((a, b)) = self.span_of(s) else {
            return false;
        };
        if a == b {
            return true;
        }
        if a / 64 == (b - 1) / 64 {
            // Within one word, as most strings are: two masked reads.
            let m = (u64::MAX << (a % 64)) & (u64::MAX >> (63 - (b - 1) % 64));
            let digits = self.digits[a / 64] & m;
            // Most strings have no digit at all: no bits to count.
            return self.starts[a / 64] & m == 0
                && (digits == 0 || digits.count_ones() < min_digits as u32);
        }
        keywords::count_in(&self.starts, a, b) == 0
            && (s.len() < min_digits || keywords::count_in(&self.digits, a, b) < min_digits)
    }
}

/// What a string offers keyword-less rules, from one pass over it.
struct DigitShape {
    digits: usize,
    /// Most digits in one stretch of digits, spaces and dashes: what a
    /// card number or SSN must fit in, as their checksums allow nothing else.
    run: usize,
    /// Two capitals then two digits (spaces removed): how an IBAN starts.
    iban_start: bool,
    /// From the first digit to the end of the last run: every digit lies inside.
    span: (usize, usize),
}

/// Digits in `b`; counted in `u8` lanes (255 bytes cannot overflow them), which vectorizes.
fn count_digits(b: &[u8]) -> usize {
    let mut blocks = b.chunks_exact(32);
    let mut n = 0;
    for block in &mut blocks {
        n += usize::from(
            block
                .iter()
                .fold(0u8, |n, &x| n + u8::from(x.wrapping_sub(b'0') < 10)),
        );
    }
    n + blocks
        .remainder()
        .iter()
        .filter(|x| x.is_ascii_digit())
        .count()
}

/// Index of the first digit in `b` at or after `from`; skips digit-free
/// 16-byte blocks with a test that vectorizes.
fn next_digit(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(block) = b.get(i..i + 16) {
        if block.iter().fold(false, |any, c| any | c.is_ascii_digit()) {
            break;
        }
        i += 16;
    }
    b.get(i..)?
        .iter()
        .position(u8::is_ascii_digit)
        .map(|p| i + p)
}

/// Whether the digit at `first` has two capitals before it and a digit
/// after it, ignoring spaces: how an IBAN starts.
fn iban_starts_at(b: &[u8], first: usize) -> bool {
    // Most digits follow neither a capital nor a space.
    if !b[..first]
        .last()
        .is_some_and(|&c| c == b' ' || c.is_ascii_uppercase())
    {
        return false;
    }
    let mut before = b[..first].iter().rev().filter(|&&c| c != b' ');
    let mut after = b[first + 1..].iter().filter(|&&c| c != b' ');
    after.next().is_some_and(u8::is_ascii_digit)
        && before.next().is_some_and(u8::is_ascii_uppercase)
        && before.next().is_some_and(u8::is_ascii_uppercase)
}

impl DigitShape {
    /// `of`, for a string borrowed from a line whose digits are the bits of
    /// `words` (`keywords::digit_mask`), `s` starting at bit `at`: it visits
    /// the digits, not every byte (a description holds hundreds of bytes and
    /// a few dozen digits).
    fn of_digits(s: &str, words: &[u64], at: usize) -> DigitShape {
        let b = s.as_bytes();
        let end = at + b.len();
        let (mut digits, mut best, mut run, mut iban_start) = (0, 0, 0, false);
        let (mut first, mut last) = (usize::MAX, usize::MAX);
        let first_word = at / 64;
        for (i, &word) in words[first_word..end.div_ceil(64)].iter().enumerate() {
            let w = first_word + i;
            let mut bits = word;
            if w * 64 < at {
                bits &= u64::MAX << (at - w * 64);
            }
            if end < (w + 1) * 64 {
                bits &= (1u64 << (end - w * 64)) - 1;
            }
            while bits != 0 {
                let p = w * 64 + bits.trailing_zeros() as usize - at;
                bits &= bits - 1;
                digits += 1;
                // Joined to the previous digit by nothing, or by spaces and dashes only.
                let joined =
                    last != usize::MAX && b[last + 1..p].iter().all(|&c| c == b' ' || c == b'-');
                if joined {
                    run += 1;
                } else {
                    best = best.max(run);
                    run = 1;
                    first = first.min(p);
                    iban_start = iban_start || iban_starts_at(b, p);
                }
                last = p;
            }
        }
        DigitShape {
            digits,
            run: best.max(run),
            iban_start,
            span: match last {
                usize::MAX => (usize::MAX, 0),
                last => (first, last + 1),
            },
        }
    }

    fn of(s: &str) -> DigitShape {
        let b = s.as_bytes();
        let (mut digits, mut best, mut iban_start) = (0, 0, false);
        let mut span = (usize::MAX, 0);
        let mut i = 0;
        while let Some(first) = next_digit(b, i) {
            iban_start = iban_start || iban_starts_at(b, first);
            // A run: digits, with any spaces and dashes between them.
            let (mut run, mut j) = (1, first + 1);
            loop {
                match b.get(j) {
                    Some(c) if c.is_ascii_digit() => {
                        run += 1;
                        j += 1;
                    }
                    Some(b' ' | b'-') => {
                        let gap = b[j..]
                            .iter()
                            .take_while(|&&c| c == b' ' || c == b'-')
                            .count();
                        if !b.get(j + gap).is_some_and(u8::is_ascii_digit) {
                            break;
                        }
                        j += gap;
                    }
                    _ => break,
                }
            }
            digits += run;
            best = best.max(run);
            span = (span.0.min(first), j);
            i = j;
        }
        DigitShape {
            digits,
            run: best,
            iban_start,
            span,
        }
    }

    /// The byte range of `s` holding everything within `reach` bytes of a
    /// digit, on character boundaries: a match that holds a digit and is at
    /// most `reach` bytes long lies inside it. `None` without digits.
    fn window(&self, s: &str, reach: usize) -> Option<(usize, usize)> {
        let (first, end) = self.span;
        if first >= end {
            return None;
        }
        // A match holding the digit at d starts after d - reach and ends by d + reach.
        let mut lo = (first + 1).saturating_sub(reach);
        let mut hi = (end - 1 + reach).min(s.len());
        while !s.is_char_boundary(lo) {
            lo -= 1;
        }
        while !s.is_char_boundary(hi) {
            hi += 1;
        }
        Some((lo, hi))
    }

    /// The shape of `s` outside the `taken` spans, each span a break: what
    /// a match overlapping none of them has to work with. Only `digits`,
    /// `run` and `iban_start` are set.
    fn outside(s: &str, taken: &[(usize, usize, Option<usize>)]) -> DigitShape {
        let mut spans: Vec<(usize, usize)> = taken.iter().map(|&(a, b, _)| (a, b)).collect();
        spans.sort_unstable();
        let mut shape = DigitShape {
            digits: 0,
            run: 0,
            iban_start: false,
            span: (usize::MAX, 0),
        };
        let mut at = 0;
        for (a, b) in spans.into_iter().chain([(s.len(), s.len())]) {
            if a > at {
                let part = DigitShape::of(&s[at..a]);
                shape.digits += part.digits;
                shape.run = shape.run.max(part.run);
                shape.iban_start |= part.iban_start;
            }
            at = at.max(b);
        }
        shape
    }

    /// Whether what digit rule `rule` reports (its `secret` group, else the
    /// match) could lie in text of this shape: a whole match that must hold a
    /// digit needs one (a group need not hold the match's digit), and the
    /// checksum's conditions, which hold for the group's text (necessary
    /// conditions only). Unlike `admits`, not the string's digit count,
    /// which gates the rule on the whole string.
    fn could_hold(&self, rule: &Rule) -> bool {
        (rule.secret.is_some() || !matches!(rule.reach, Reach::NearDigits(_)) || self.digits > 0)
            && self.fits_checksum(rule)
    }

    /// What `rule`'s checksum requires of the text it checks, if any: a card
    /// number's or SSN's digits in one stretch, an IBAN's start.
    fn fits_checksum(&self, rule: &Rule) -> bool {
        match rule.checksum {
            Some(Checksum::Luhn) => self.run >= 13,
            Some(Checksum::Ssn) => self.run >= 9,
            Some(Checksum::Iban) => self.iban_start,
            None => true,
        }
    }

    /// Whether a keyword-less rule can possibly match: its digit count, plus
    /// what its checksum requires of the secret (necessary conditions only).
    fn admits(&self, rule: &Rule) -> bool {
        self.digits >= rule.min_digits && self.fits_checksum(rule)
    }
}

impl Redactor {
    pub fn new(set: RuleSet, mode: Mode) -> Redactor {
        Redactor { set, mode }
    }

    pub fn rules(&self) -> &RuleSet {
        &self.set
    }

    fn marker(&self, rule_id: &str, secret: &[u8]) -> String {
        let mut m = String::with_capacity(MARKER_PREFIX.len() + rule_id.len() + 20);
        self.push_marker(&mut m, rule_id, secret);
        m
    }

    fn push_marker(&self, m: &mut String, rule_id: &str, secret: &[u8]) {
        m.push_str(MARKER_PREFIX);
        m.push_str(rule_id);
        if let Mode::Hash(key) = &self.mode {
            // HMAC accepts keys of any length; a fresh key always constructs.
            if let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
                mac.update(secret);
                let tag = mac.finalize().into_bytes();
                let mut hex = Vec::with_capacity(16);
                push_hex(&mut hex, &tag[..8]);
                m.push(':');
                m.push_str(std::str::from_utf8(&hex).unwrap_or_default());
            }
        }
        m.push(']');
    }

    /// Every keyword occurrence in `text`: (start, end, pattern), sorted by start.
    fn keyword_hits(&self, text: &[u8]) -> Vec<Hit> {
        let mut hits = Vec::with_capacity(16);
        if let Some(scanner) = &self.set.prefilter {
            scanner.scan(text, &mut hits);
        }
        hits.sort_unstable();
        hits.dedup();
        hits
    }

    /// The line's keyword hits, sorted, and its digit mask, in `scratch`'s buffers.
    fn line<'r>(&self, raw: &'r [u8], scratch: &mut Scratch) -> Line<'r> {
        let (mut hits, mut digits, mut starts) = std::mem::take(scratch);
        hits.clear();
        digits.clear();
        match &self.set.prefilter {
            Some(scanner) => scanner.scan_line(raw, &mut hits, &mut digits),
            None => keywords::digit_mask(raw, &mut digits),
        }
        // The SIMD engine finds them once each, by start; the DFA may not.
        if !hits.is_sorted_by(|a, b| a < b) {
            hits.sort_unstable();
            hits.dedup();
        }
        starts.clear();
        starts.resize(digits.len(), 0);
        for &(start, _, _) in &hits {
            starts[start / 64] |= 1 << (start % 64);
        }
        Line {
            raw,
            hits,
            digits,
            starts,
        }
    }

    /// Redacts `event` in place. `raw` is the line it was parsed from: one
    /// keyword search over it serves every string the parser borrowed from it.
    pub fn redact_value(
        &self,
        raw: Option<&[u8]>,
        event: &mut Value<'_>,
        counts: &mut RuleCounts,
    ) -> u64 {
        if counts.len() != self.set.rules.len() + 1 {
            counts.resize(self.set.rules.len() + 1, 0);
        }
        SCRATCH.with_borrow_mut(|scratch| {
            let line = raw.map(|raw| self.line(raw, scratch));
            let n = self.walk(event, line.as_ref(), counts);
            // The buffers go back for the next line, unless a huge line grew them.
            if let Some(Line {
                mut hits,
                mut digits,
                mut starts,
                ..
            }) = line
            {
                const KEEP: usize = 1 << 14;
                for words in [&mut digits, &mut starts] {
                    if words.capacity() > KEEP {
                        words.shrink_to(KEEP);
                    }
                }
                if hits.capacity() > KEEP {
                    hits.shrink_to(KEEP);
                }
                *scratch = (hits, digits, starts);
            }
            n
        })
    }

    fn walk(&self, v: &mut Value<'_>, line: Option<&Line<'_>>, counts: &mut RuleCounts) -> u64 {
        match v {
            Value::Object(members) => {
                let mut n = 0;
                for (k, val) in members.iter_mut() {
                    if self.set.is_sensitive_key(k) {
                        n += self.redact_whole(val, counts);
                    } else {
                        n += self.walk_member(val, line, counts);
                    }
                }
                n
            }
            Value::Array(items) => items
                .iter_mut()
                .map(|i| self.walk_member(i, line, counts))
                .sum(),
            other => self.walk_member(other, line, counts),
        }
    }

    /// `walk` for one member or item: a string no rule can match (most of
    /// them) is passed over without a call.
    #[inline(always)]
    fn walk_member(
        &self,
        v: &mut Value<'_>,
        line: Option<&Line<'_>>,
        counts: &mut RuleCounts,
    ) -> u64 {
        match v {
            Value::String(s) => {
                if s.len() < 4 {
                    return 0;
                }
                if let Some(l) = line {
                    if l.quiet(s, self.set.min_digits) {
                        return 0;
                    }
                }
                match self.redact_str(s, line, counts) {
                    Some((new, n)) => {
                        *s = Cow::Owned(new);
                        n
                    }
                    None => 0,
                }
            }
            Value::Object(_) | Value::Array(_) => self.walk(v, line, counts),
            _ => 0,
        }
    }

    fn redact_whole(&self, v: &mut Value<'_>, counts: &mut RuleCounts) -> u64 {
        match v {
            Value::Null | Value::Bool(_) => 0,
            Value::String(s) if is_marker(s) => 0,
            other => {
                let m = self.marker(KEY_RULE_ID, &canon::to_vec(other));
                *other = Value::String(Cow::Owned(m));
                counts[self.set.rules.len()] += 1;
                1
            }
        }
    }

    /// The rules worth trying on `s`: those with a keyword inside it, and
    /// keyword-less rules whose necessary digit shape `s` has.
    #[cfg(test)]
    fn candidate_rules(&self, s: &str, line: Option<&Line<'_>>) -> Candidates {
        let mut found = Candidates::default();
        self.find_candidates(s, line, &mut found);
        found
    }

    /// `candidate_rules` into `found`'s buffers (reused from string to string).
    fn find_candidates(&self, s: &str, line: Option<&Line<'_>>, found: &mut Candidates) {
        let Candidates {
            rules: cands,
            starts,
            shape,
        } = found;
        cands.clear();
        starts.clear();
        *shape = None;
        // The occurrence is `s[start..end]`.
        let mut add = |pattern: usize, start: usize, end: usize, cands: &mut Vec<usize>| {
            for &r in &self.set.pattern_rules[pattern] {
                let rule = &self.set.rules[r];
                let followed = || match &rule.keyword_followed_by {
                    None => true,
                    Some(next) => s.get(end..).is_some_and(|rest| next.is_match(rest)),
                };
                let anchored = rule.reach == Reach::AtKeyword;
                if (anchored || !cands.contains(&r)) && followed() {
                    cands.push(r);
                    if anchored {
                        starts.push((r, start));
                    }
                }
            }
        };
        let mut digits = None;
        match line.and_then(|l| l.span_of(s).map(|span| (l, span))) {
            // Borrowed from the line: its keyword hits and digits are known already.
            Some((l, (a, b))) => {
                let first = l.hits.partition_point(|h| h.0 < a);
                for &(start, end, pattern) in &l.hits[first..] {
                    if start >= b {
                        break;
                    }
                    if end <= b {
                        add(pattern, start - a, end - a, cands);
                    }
                }
                digits = Some(keywords::count_in(&l.digits, a, b));
            }
            None => {
                for (start, end, pattern) in self.keyword_hits(s.as_bytes()) {
                    add(pattern, start, end, cands);
                }
            }
        }
        // The finer shape is only worth taking past the minimum count of digits.
        if !self.set.digit_rules.is_empty()
            && s.len() >= self.set.min_digits
            && digits.unwrap_or_else(|| count_digits(s.as_bytes())) >= self.set.min_digits
        {
            let digits = match line.and_then(|l| l.span_of(s).map(|(a, _)| (l, a))) {
                Some((l, a)) => DigitShape::of_digits(s, &l.digits, a),
                None => DigitShape::of(s),
            };
            cands.extend(
                self.set
                    .digit_rules
                    .iter()
                    .filter(|&&r| digits.admits(&self.set.rules[r])),
            );
            *shape = Some(digits);
        }
        cands.sort_unstable();
        cands.dedup();
        starts.sort_unstable();
        starts.dedup();
    }

    fn redact_str(
        &self,
        s: &str,
        line: Option<&Line<'_>>,
        counts: &mut RuleCounts,
    ) -> Option<(String, u64)> {
        if s.len() < 4 || is_marker(s) {
            return None;
        }
        STR_SCRATCH
            .with_borrow_mut(|(found, taken)| self.redact_str_in(s, line, counts, found, taken))
    }

    /// `redact_str` with its working buffers, reused from string to string.
    fn redact_str_in(
        &self,
        s: &str,
        line: Option<&Line<'_>>,
        counts: &mut RuleCounts,
        found: &mut Candidates,
        taken: &mut Taken,
    ) -> Option<(String, u64)> {
        self.find_candidates(s, line, found);
        let Candidates {
            rules: cands,
            starts,
            shape,
        } = found;
        if cands.is_empty() {
            return None;
        }
        let mut shape = shape.take();
        // Existing (exact) markers are off limits, which keeps redaction idempotent.
        taken.clear();
        let mut from = 0;
        while let Some(i) = memchr::memchr(b'[', &s.as_bytes()[from..]) {
            let start = from + i;
            match marker_len_at(s, start) {
                Some(len) => {
                    taken.push((start, start + len, None));
                    from = start + len;
                }
                None => from = start + 1,
            }
        }
        let overlaps = |t: &[(usize, usize, Option<usize>)], a: usize, b: usize| {
            t.iter().any(|&(x, y, _)| a < y && x < b)
        };
        // The digit shape of the text outside what earlier rules took.
        let mut free: Option<DigitShape> = None;
        for &r in cands.iter() {
            let rule = &self.set.rules[r];
            // A match overlapping a taken span is turned down, so a digit rule
            // needs its digits beside them: a token holding a run of digits
            // (a Slack token, say) leaves the card and SSN rules nothing to try.
            if rule.min_digits > 0 && taken.iter().any(|t| t.2.is_some()) && skip_beside_taken() {
                let free = free.get_or_insert_with(|| DigitShape::outside(s, taken));
                if !free.could_hold(rule) {
                    #[cfg(test)]
                    SKIPPED_BESIDE_TAKEN.set(SKIPPED_BESIDE_TAKEN.get() + 1);
                    continue;
                }
            }
            let mut consider = |m: Match| {
                if m.is_empty() || overlaps(taken, m.start(), m.end()) {
                    return;
                }
                let text = &s[m.range()];
                if rule.entropy.is_some_and(|min| shannon_entropy(text) < min) {
                    return;
                }
                let ok = match rule.checksum {
                    None => true,
                    Some(Checksum::Luhn) => luhn_ok(text),
                    Some(Checksum::Iban) => iban_ok(text),
                    Some(Checksum::Ssn) => ssn_ok(text),
                };
                if ok {
                    taken.push((m.start(), m.end(), Some(r)));
                }
            };
            search_rule(r, rule, s, starts, &mut shape, &mut consider);
        }
        // What the rules took, without the markers that were there before.
        taken.retain(|t| t.2.is_some());
        if taken.is_empty() {
            return None;
        }
        taken.sort_unstable();
        let mut out = String::with_capacity(s.len() + 16 * taken.len());
        let mut at = 0;
        for &(a, b, r) in taken.iter() {
            let Some(r) = r else { continue };
            out.push_str(&s[at..a]);
            self.push_marker(&mut out, &self.set.rules[r].id, &s.as_bytes()[a..b]);
            counts[r] += 1;
            at = b;
        }
        out.push_str(&s[at..]);
        Some((out, taken.len() as u64))
    }
}

/// Spans of a string taken by markers already there (`None`) or by rules.
type Taken = Vec<(usize, usize, Option<usize>)>;

thread_local! {
    /// Each thread's buffers for `redact_str`.
    static STR_SCRATCH: std::cell::RefCell<(Candidates, Taken)> =
        const {
            std::cell::RefCell::new((
                Candidates {
                    rules: Vec::new(),
                    starts: Vec::new(),
                    shape: None,
                },
                Vec::new(),
            ))
        };
}

#[cfg(test)]
thread_local! {
    /// Set by a test to try every digit rule beside taken spans, as a reference.
    static TRY_BESIDE_TAKEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// How many times a digit rule was passed over beside taken spans.
    static SKIPPED_BESIDE_TAKEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Whether `redact_str` passes over digit rules with no room beside taken spans.
#[inline(always)]
fn skip_beside_taken() -> bool {
    #[cfg(test)]
    return !TRY_BESIDE_TAKEN.get();
    #[cfg(not(test))]
    true
}

/// Every match of rule `r` in `s`, as `search_all` over the whole string
/// finds them, looked for only where its `Reach` says they can be. `starts`
/// are where the keyword occurrences of `Reach::AtKeyword` rules start.
fn search_rule(
    r: usize,
    rule: &Rule,
    s: &str,
    starts: &[(usize, usize)],
    shape: &mut Option<DigitShape>,
    found: &mut impl FnMut(Match),
) {
    match rule.reach {
        Reach::AtKeyword => {
            let first = starts.partition_point(|&(x, _)| x < r);
            let mut from = 0;
            for &(_, at) in starts[first..].iter().take_while(|&&(x, _)| x == r) {
                if at < from {
                    continue; // inside the previous match, as a search along `s` would skip it
                }
                let input = Input::new(s).range(at..).anchored(Anchored::Yes);
                if let Some(end) = search_once(rule, &input, found) {
                    from = end;
                }
            }
        }
        Reach::NearDigits(len) => {
            let shape = shape.get_or_insert_with(|| DigitShape::of(s));
            if let Some((lo, hi)) = shape.window(s, len) {
                search_all(rule, Input::new(s).range(lo..hi), found);
            }
        }
        Reach::Anywhere => search_all(rule, Input::new(s), found),
    }
}

/// Every match of `rule` in `input`, leftmost-first and non-overlapping, as
/// its `secret` group (or the whole match when the group did not take part).
fn search_all(rule: &Rule, input: Input<'_>, found: &mut impl FnMut(Match)) {
    let hay = input.haystack();
    match rule.secret {
        Some(g) => {
            for m in rule.regex.find_iter(input.clone()) {
                if let Some(m) = secret_in(rule, g, hay, m) {
                    found(m);
                }
            }
        }
        None => rule.regex.find_iter(input).for_each(found),
    }
}

/// The first match of `rule` in `input` (anchored or not), given to `found`
/// as in `search_all`; returns where the whole match ends.
fn search_once(rule: &Rule, input: &Input<'_>, found: &mut impl FnMut(Match)) -> Option<usize> {
    let by_dfa = match rule.at_keyword() {
        Some(dfa) if input.get_anchored().is_anchored() => dfa.try_search_fwd(input).ok(),
        _ => None,
    };
    let m = match by_dfa {
        Some(end) => Match::must(0, input.start()..end?.offset()),
        None => rule.regex.search(input)?,
    };
    match rule.secret {
        Some(g) => found(secret_in(rule, g, input.haystack(), m)?),
        None => found(m),
    }
    Some(m.end())
}

/// The `secret` group (index `g`) of `whole`, a match of `rule` in `hay`:
/// from its split when that settles it, else from the capture engine run
/// over the match alone, which finds the same match and parse.
fn secret_in(rule: &Rule, g: usize, hay: &[u8], whole: Match) -> Option<Match> {
    if let Some(span) = rule.split().and_then(|s| s.find(hay, whole.span())) {
        return Some(Match::new(whole.pattern(), span));
    }
    secret_by_captures(rule, g, hay, whole)
}

fn secret_by_captures(rule: &Rule, g: usize, hay: &[u8], whole: Match) -> Option<Match> {
    let mut caps = rule.regex.create_captures();
    let input = Input::new(hay).span(whole.span()).anchored(Anchored::Yes);
    rule.regex.search_captures(&input, &mut caps);
    secret_of(&caps, g)
}

fn secret_of(caps: &regex_automata::util::captures::Captures, g: usize) -> Option<Match> {
    let whole = caps.get_match()?;
    let span = caps.get_group(g).unwrap_or(whole.span());
    Some(Match::new(whole.pattern(), span))
}

impl crate::pipeline::Redactor for Redactor {
    fn redact(&self, raw: &[u8], event: &mut Value<'_>, counts: &mut RuleCounts) -> u64 {
        self.redact_value(Some(raw), event, counts)
    }

    fn rule_ids(&self) -> Vec<String> {
        self.set.rule_ids()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &[u8] = br#"{"version":1,
      "sensitive_keys":{"exact":["password","session"],"suffix":["token","secret","apikey"]},
      "rules":[
        {"id":"github-pat","keywords":["ghp_"],"regex":"ghp_[A-Za-z0-9]{36}"},
        {"id":"kv-password","keywords":["password"],"regex":"(?i)password\\s*[=:]\\s*(?P<secret>[^\\s'\",;]{6,})"},
        {"id":"payment-card","min_digits":13,"regex":"\\b(?:\\d[ -]?){12,18}\\d\\b","checksum":"luhn"},
        {"id":"iban","min_digits":12,"regex":"\\b[A-Z]{2}\\d{2}[A-Z0-9]{11,30}\\b","checksum":"iban"}
      ]}"#;

    fn redactor(mode: Mode) -> Redactor {
        Redactor::new(RuleSet::from_json(&[RULES]).unwrap(), mode)
    }

    fn run(r: &Redactor, text: &str) -> (String, u64, RuleCounts) {
        let mut v = json::parse(text.as_bytes(), 64).unwrap();
        let mut counts = Vec::new();
        let n = r.redact_value(Some(text.as_bytes()), &mut v, &mut counts);
        (String::from_utf8(canon::to_vec(&v)).unwrap(), n, counts)
    }

    #[test]
    fn redacts_keys_values_and_keeps_clean_text() {
        let r = redactor(Mode::Mask);
        let (out, n, counts) = run(
            &r,
            r#"{"user":{"Pass-Word":"hunter22","input_tokens":512,"refresh_token":"abc","session":null},
                "log":"cloned with ghp_0123456789abcdefghijABCDEFGHIJ012345 then password = s3cr3t!!",
                "card":"4111 1111 1111 1111","iban":"GB82WEST12345698765432","bad_card":"4111 1111 1111 1112"}"#,
        );
        assert!(
            out.contains(r#""Pass-Word":"[REDACTED:sensitive-key]""#),
            "{out}"
        );
        assert!(out.contains(r#""input_tokens":512"#));
        assert!(out.contains(r#""refresh_token":"[REDACTED:sensitive-key]""#));
        assert!(out.contains(r#""session":null"#));
        assert!(
            out.contains(
                "cloned with [REDACTED:github-pat] then password = [REDACTED:kv-password]"
            ),
            "{out}"
        );
        assert!(out.contains(r#""card":"[REDACTED:payment-card]""#));
        assert!(out.contains(r#""iban":"[REDACTED:iban]""#));
        assert!(
            out.contains(r#""bad_card":"4111 1111 1111 1112""#),
            "Luhn-invalid numbers stay"
        );
        assert_eq!(n, 6);
        assert_eq!(counts, vec![1, 1, 1, 1, 2]);
    }

    #[test]
    fn redaction_is_idempotent() {
        let r = redactor(Mode::Hash(b"k1".to_vec()));
        let (once, n1, _) = run(
            &r,
            r#"{"a":"password=abcdef12 ghp_0123456789abcdefghijABCDEFGHIJ012345","token":"x"}"#,
        );
        let (twice, n2, _) = run(&r, &once);
        assert_eq!(n1, 3);
        assert_eq!(n2, 0);
        assert_eq!(once, twice);
    }

    #[test]
    fn hash_mode_is_keyed_and_stable() {
        let a = run(
            &redactor(Mode::Hash(b"k1".to_vec())),
            r#"{"t":"ghp_0123456789abcdefghijABCDEFGHIJ012345"}"#,
        )
        .0;
        let b = run(
            &redactor(Mode::Hash(b"k1".to_vec())),
            r#"{"t":"ghp_0123456789abcdefghijABCDEFGHIJ012345"}"#,
        )
        .0;
        let c = run(
            &redactor(Mode::Hash(b"k2".to_vec())),
            r#"{"t":"ghp_0123456789abcdefghijABCDEFGHIJ012345"}"#,
        )
        .0;
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(
            a.starts_with(r#"{"t":"[REDACTED:github-pat:"#)
                && a.len() == r#"{"t":"[REDACTED:github-pat:]"}"#.len() + 16
        );
    }

    #[test]
    fn bad_rule_files_name_the_rule_and_problem() {
        let e = RuleSet::from_json(&[br#"{"rules":[{"id":"x","keywords":["a"],"regex":"("}]}"#])
            .err()
            .unwrap();
        assert!(e.contains("rule \"x\"") && e.contains("regex"), "{e}");
        let e = RuleSet::from_json(&[br#"{"rules":[{"id":"y","regex":"a+"}]}"#])
            .err()
            .unwrap();
        assert!(e.contains("min_digits"), "{e}");
        let e = RuleSet::from_json(&[RULES, RULES]).err().unwrap();
        assert!(e.contains("used twice"), "{e}");
    }

    #[test]
    fn only_exact_markers_are_protected() {
        let r = redactor(Mode::Mask);
        let token = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
        for text in [
            format!("[REDACTED: see {token}"),
            format!("[REDACTED:see {token}]"),
            format!("[REDACTED:x:zz] {token}"),
        ] {
            let (out, n, _) = run(&r, &format!(r#"{{"a":"{text}"}}"#));
            assert_eq!(n, 1, "{text}");
            assert!(!out.contains(token), "{out}");
        }
        assert!(
            is_marker("[REDACTED:github-pat]")
                && is_marker("[REDACTED:github-pat:0123456789abcdef]")
        );
        assert!(
            !is_marker("[REDACTED:github-pat:0123]")
                && !is_marker("[REDACTED:]")
                && !is_marker("[REDACTED:Github]")
        );
    }

    /// The shape by one plain pass over every byte (how `DigitShape::of` used to work).
    fn plain_shape(s: &str) -> (usize, usize, bool) {
        let (mut digits, mut run, mut best) = (0, 0, 0);
        for c in s.bytes() {
            if c.is_ascii_digit() {
                digits += 1;
                run += 1;
                best = best.max(run);
            } else if c != b' ' && c != b'-' {
                run = 0;
            }
        }
        let compact: Vec<u8> = s.bytes().filter(|&c| c != b' ').collect();
        let iban = compact.windows(4).any(|w| {
            w[0].is_ascii_uppercase()
                && w[1].is_ascii_uppercase()
                && w[2].is_ascii_digit()
                && w[3].is_ascii_digit()
        });
        (digits, best, iban)
    }

    #[test]
    fn digit_shape_skips_text_but_sees_what_a_plain_pass_sees() {
        let alphabet = b"0123456789 -AbZ. ";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..400 {
            let mut text = String::new();
            for _ in 0..len % 60 + len / 4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x.is_multiple_of(9) {
                    // A digit-free stretch longer than a block, as in prose.
                    text.push_str("lorem ipsum dolor sit amet");
                } else {
                    text.push(char::from(alphabet[(x % alphabet.len() as u64) as usize]));
                }
            }
            let shape = DigitShape::of(&text);
            assert_eq!(
                (shape.digits, shape.run, shape.iban_start),
                plain_shape(&text),
                "{text:?}"
            );
        }
        for text in [
            "AB 1 2",
            "A B12",
            "GB82 WEST 1234",
            "12--34",
            "1 -2",
            "4111 1111-1111 1111",
        ] {
            let shape = DigitShape::of(text);
            assert_eq!(
                (shape.digits, shape.run, shape.iban_start),
                plain_shape(text),
                "{text}"
            );
        }
    }

    /// The shape read from a line's digit bits is the shape read from the
    /// string's bytes, wherever the string starts and ends in the line's words.
    #[test]
    fn digit_shape_from_the_line_is_the_strings() {
        let alphabet = [
            "0",
            "7",
            "4111 1111-",
            "1 2",
            " ",
            "-",
            "AB",
            "Z",
            "e",
            "é",
            "GB82 ",
            "xx",
        ];
        let mut x: u64 = 0x1234_abcd_9876_ef01;
        let mut words = Vec::new();
        let mut found = (0, 0);
        for round in 0..6000 {
            let mut text = String::new();
            for _ in 0..round % 90 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                text.push_str(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            // Bytes on either side of the string that are digits or joiners too.
            let (pad, tail) = (round % 131, round % 3);
            let raw = format!(
                "{}{text}{}",
                &"1 -".repeat(pad / 3 + 1)[..pad],
                "9".repeat(tail)
            );
            keywords::digit_mask(raw.as_bytes(), &mut words);
            let s = &raw[pad..pad + text.len()];
            let (a, b) = (DigitShape::of(s), DigitShape::of_digits(s, &words, pad));
            assert_eq!(
                (a.digits, a.run, a.iban_start, a.span),
                (b.digits, b.run, b.iban_start, b.span),
                "{s:?} at {pad}"
            );
            found.0 += usize::from(a.iban_start);
            found.1 += usize::from(a.run >= 13);
        }
        assert!(found.0 > 100 && found.1 > 100, "{found:?}");
    }

    #[test]
    fn checksum_rules_see_digits_however_their_regex_spaces_them() {
        // The checksums allow any spaces and dashes between digits, so the
        // shape that admits a rule must too.
        let rules = br#"{"rules":[
          {"id":"ssn-spaced","min_digits":9,"checksum":"ssn","regex":"\\b[0-9]{3}[ -]+[0-9]{2}[ -]+[0-9]{4}\\b"},
          {"id":"card-spaced","min_digits":13,"checksum":"luhn","regex":"\\b4[0-9]{3}(?:[ -]*[0-9]{4}){3}\\b"}]}"#;
        let r = Redactor::new(RuleSet::from_json(&[rules]).unwrap(), Mode::Mask);
        let (out, n, _) = run(
            &r,
            r#"{"a":"ssn 123  45 - 6789 ok","b":"card 4111 -- 1111  1111 1111","c":"2026-05-01"}"#,
        );
        assert_eq!(n, 2, "{out}");
        assert!(!out.contains("6789") && !out.contains("4111"), "{out}");
    }

    #[test]
    fn keyword_followed_by_skips_only_occurrences_the_regex_cannot_match() {
        let shipped = std::fs::read("python/agent_bom/data/redaction-rules.json").unwrap();
        let r = Redactor::new(RuleSet::from_json(&[&shipped]).unwrap(), Mode::Mask);
        for (text, secret) in [
            ("SECRET_KEY=a8Fq2LmZ9x!", "a8Fq2LmZ9x!"),
            ("secret-key: a8Fq2LmZ9x!", "a8Fq2LmZ9x!"),
            (
                "the secrets, then password\u{a0}= a8Fq2LmZ9x!",
                "a8Fq2LmZ9x!",
            ),
            // Escaped in the line: the parser's copy is searched on its own.
            (
                "tokens, then {\\\"token\\\": \\\"a8Fq2LmZ9x!\\\"}",
                "a8Fq2LmZ9x!",
            ),
            (
                "at risk: SK0123456789abcdef0123456789ABCDEF",
                "SK0123456789abcdef",
            ),
        ] {
            let (out, n, _) = run(&r, &format!(r#"{{"a":"{text}"}}"#));
            assert!(n == 1 && !out.contains(secret), "{text}: {out}");
        }
        // Each keyword is there, but never followed the way its rule needs.
        let clean = r#"{"a":"secrets of Asia: the risk of key-value stores for passwords"}"#;
        assert_eq!(run(&r, clean).1, 0);
        let line = clean.as_bytes();
        let v = json::parse(line, 8).unwrap();
        let Value::Object(members) = &v else { panic!() };
        let s = members[0].1.as_str().unwrap();
        let l = r.line(line, &mut Scratch::default());
        assert!(!l.hits.is_empty());
        assert!(r.candidate_rules(s, Some(&l)).rules.is_empty());
    }

    #[test]
    fn a_follower_turns_down_by_first_byte_only_what_its_regex_would() {
        let r = shipped();
        let mut followers: Vec<&Follower> = r
            .set
            .rules
            .iter()
            .filter_map(|x| x.keyword_followed_by.as_ref())
            .collect();
        // Every shipped follower runs as a DFA; one with a Unicode word
        // boundary cannot, and runs as a regex.
        assert!(followers.iter().all(|f| f.dfa.is_some()));
        assert!(Follower::new(r"\s*\bx").unwrap().dfa.is_none());
        let extra = [
            Follower::new(r"\s*\bx").unwrap(),
            Follower::new(r"\s*x|y").unwrap(),
            Follower::new(r"(?:a?b*)+c|\w").unwrap(),
            Follower::new(r"(?i)k").unwrap(),
            Follower::new(r"[^a-z]").unwrap(),
        ];
        followers.extend(extra.iter());
        assert!(Follower::new("a*").unwrap().first.is_none());
        let mut rests: Vec<String> = (0u32..0x3000)
            .filter_map(char::from_u32)
            .map(|c| format!("{c}abc1:"))
            .collect();
        rests.extend(
            [
                "",
                "=",
                " =x",
                "\u{a0}= secret",
                "\u{212a}",
                "ſ",
                "1ab",
                "A",
                "0f",
            ]
            .map(String::from),
        );
        for f in followers {
            for rest in &rests {
                assert_eq!(
                    f.is_match(rest),
                    f.regex.is_match(rest),
                    "{:?} on {rest:?}",
                    f.regex
                );
            }
        }
    }

    #[test]
    fn digit_rules_run_on_strings_with_their_digit_shape_borrowed_or_not() {
        let r = redactor(Mode::Mask);
        let (out, n, counts) = run(
            &r,
            r#"{"t":"2026-05-01","a":"card 4111 1111 1111 1111 ok","b":"x\n4111-1111-1111-1111",
                "n":4111111111111111,"c":"iban GB82WEST12345698765432","d":"x\tGB82WEST12345698765432"}"#,
        );
        assert_eq!(n, 4, "{out}");
        assert_eq!(counts[2..4], [2, 2]);
        assert!(out.contains(r#""n":4111111111111111"#), "{out}");
    }

    #[test]
    fn sensitive_names_are_the_exact_names_and_suffixes_normalized() {
        let r = shipped();
        let doc = std::fs::read("python/agent_bom/data/redaction-rules.json").unwrap();
        let doc = json::parse(&doc, 16).unwrap();
        let names = doc.get("sensitive_keys").unwrap();
        let list = |what: &str| -> Vec<String> {
            str_list(names.get(what), what)
                .unwrap()
                .iter()
                .map(|k| {
                    k.bytes()
                        .filter(|&c| !is_name_separator(c))
                        .map(|c| char::from(c.to_ascii_lowercase()))
                        .collect()
                })
                .collect()
        };
        let (exact, suffix) = (list("exact"), list("suffix"));
        // What the trie must answer: normalize, then compare.
        let naive = |name: &str| {
            let n: String = name
                .bytes()
                .filter(|&c| !is_name_separator(c))
                .map(|c| char::from(c.to_ascii_lowercase()))
                .collect();
            exact.contains(&n) || suffix.iter().any(|s| n.ends_with(s.as_str()))
        };
        let pieces = [
            "pass",
            "word",
            "Token",
            "TOKEN",
            "_",
            "-",
            ".",
            " ",
            "key",
            "api",
            "Secret",
            "auth",
            "orization",
            "cookie",
            "s",
            "x",
            "session",
            "otp",
            "t",
            "id",
            "é",
            "",
        ];
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut sensitive = 0;
        for round in 0..20_000 {
            let mut name = String::new();
            for _ in 0..(round % 6) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                name.push_str(pieces[(x % pieces.len() as u64) as usize]);
            }
            assert_eq!(r.set.is_sensitive_key(&name), naive(&name), "{name:?}");
            sensitive += usize::from(naive(&name));
        }
        assert!(sensitive > 1000, "{sensitive}");
        for name in exact.iter().chain(&suffix) {
            assert!(r.set.is_sensitive_key(name) && r.set.is_sensitive_key(&name.to_uppercase()));
        }
        // A suffix name holds at any depth of its prefix; an exact one only as itself.
        assert!(r.set.is_sensitive_key("github_Access-Token"));
        assert!(!r.set.is_sensitive_key("otp_enabled") && r.set.is_sensitive_key("O.T.P"));
        let empty = SensitiveNames::new([]).unwrap();
        assert!(!empty.contains("") && !empty.contains("token"));
        let everything = SensitiveNames::new([("__", true)]).unwrap();
        assert!(everything.contains("") && everything.contains("anything"));
        let odd = SensitiveNames::new([("pässwort", false), ("x.Y", true)]).unwrap();
        // 'Ä' and 'ä' differ beyond ASCII: no case folding there.
        assert!(!odd.contains("PÄSSWORT"));
        assert!(odd.contains("pässwort") && odd.contains("P_ÄSS-WORT".replace('Ä', "ä").as_str()));
        assert!(odd.contains("a_b_xy") && !odd.contains("xyz"));
    }

    #[test]
    fn strings_borrowed_from_the_line_are_redacted_as_strings_on_their_own() {
        // The line's hits and digit mask (`Line::quiet`, `count_in`) against
        // a search of each string alone (an escape makes the parser copy it).
        let custom = br#"{"rules":[{"id":"bang","keywords":["!"],"regex":"!"},
            {"id":"three","min_digits":3,"regex":"\\b[0-9]{3}\\b"}]}"#;
        let custom = Redactor::new(RuleSet::from_json(&[custom]).unwrap(), Mode::Mask);
        let pieces = [
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "secret",
            "secret=hunter2xyz",
            "token",
            "4111 1111 1111 1111",
            "123-45-6789",
            "GB82 WEST 1234 5698 7654 32",
            "2026-05-01",
            "CVE-2026-12597",
            "dev@corp.example.com",
            "@",
            "1",
            "12345678",
            " ",
            "x",
            "sk",
            "https://u:p4ss@h.example.com",
            "AKIAABC    DEFGHIJKLMNOP",
            "é",
            "!",
            "123",
            "ab",
        ];
        let mut portable = shipped();
        portable.set.prefilter = portable.set.prefilter.take().map(KeywordScanner::portable);
        for r in [shipped(), portable, custom] {
            let (mut quiet, mut searched) = (0, 0);
            let mut x: u64 = 0x853c_49e6_748f_ea9b;
            for round in 0..3000 {
                let mut s = String::new();
                for _ in 0..(round % 9) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    s.push_str(pieces[(x % pieces.len() as u64) as usize]);
                }
                let Some(first) = s.chars().next() else {
                    continue;
                };
                // The same string with its first character escaped: the parser copies it.
                let escaped = format!("\\u{:04x}{}", u32::from(first), &s[first.len_utf8()..]);
                let borrowed = format!(r#"{{"a":"{s}","b":["{s}"]}}"#);
                let copied = format!(r#"{{"a":"{escaped}","b":["{escaped}"]}}"#);
                // The borrowed string is found in the line, and both ways are taken.
                let v = json::parse(borrowed.as_bytes(), 8).unwrap();
                let a_str = v.get("a").and_then(Value::as_str).unwrap();
                let l = r.line(borrowed.as_bytes(), &mut Scratch::default());
                assert!(l.span_of(a_str).is_some(), "{s}");
                if s.len() >= 4 && l.quiet(a_str, r.set.min_digits) {
                    quiet += 1;
                } else {
                    searched += 1;
                }
                let (a, n, counts) = run(&r, &borrowed);
                let (b, m, counts_b) = run(&r, &copied);
                assert_eq!(a, b, "{s}");
                assert_eq!((n, counts), (m, counts_b), "{s}");
            }
            assert!(
                quiet >= 20 && searched >= 20,
                "{quiet} quiet, {searched} searched"
            );
        }
    }

    fn shipped() -> Redactor {
        let shipped = std::fs::read("python/agent_bom/data/redaction-rules.json").unwrap();
        Redactor::new(RuleSet::from_json(&[&shipped]).unwrap(), Mode::Mask)
    }

    #[test]
    fn reach_is_read_from_the_regex() {
        let r = shipped();
        let reach = |id: &str| r.set.rules.iter().find(|x| x.id == id).unwrap().reach;
        // Literal prefixes that are keywords, case variants included.
        for id in [
            "github-pat",
            "aws-access-key-id",
            "slack-token",
            "bearer-token",
            "basic-auth",
        ] {
            assert_eq!(reach(id), Reach::AtKeyword, "{id}");
            let rule = r.set.rules.iter().find(|x| x.id == id).unwrap();
            assert!(
                rule.at_keyword().is_some(),
                "{id} searches with a dense DFA"
            );
        }
        // A keyword inside the match ("://", "@", "t3blbkfj"), or a prefix no keyword starts.
        for id in [
            "url-credentials",
            "email",
            "openai-api-key",
            "generic-secret-assignment",
        ] {
            assert_eq!(reach(id), Reach::Anywhere, "{id}");
        }
        assert_eq!(reach("us-ssn"), Reach::NearDigits(11));
        assert!(matches!(reach("payment-card"), Reach::NearDigits(n) if n >= 19));
        // The IBAN regex guarantees two digits, not eight: one is enough for a window.
        assert!(matches!(reach("iban"), Reach::NearDigits(_)));
        let hir = |p: &str| compile(p).unwrap().1;
        assert!(!needs_digit(&hir(r"[0-9]*x")) && !needs_digit(&hir(r"1|a")));
        assert!(needs_digit(&hir(r"(?:a|b)(?:1|[0-9]{2})")) && needs_digit(&hir(r"[0-5]+")));
        // `\d` is Unicode: other digits may stand for it, so it is no ASCII digit.
        assert!(!needs_digit(&hir(r"\d")));
    }

    /// Every candidate rule's matches in `s`, searched where its reach says
    /// and over the whole string, must be the same.
    fn assert_reach_finds_all(r: &Redactor, s: &str) {
        let Candidates {
            rules,
            starts,
            mut shape,
        } = r.candidate_rules(s, None);
        for rule_index in rules {
            let rule = &r.set.rules[rule_index];
            let (mut narrow, mut whole) = (Vec::new(), Vec::new());
            search_rule(rule_index, rule, s, &starts, &mut shape, &mut |m| {
                narrow.push(m.range())
            });
            search_all(rule, Input::new(s), &mut |m| whole.push(m.range()));
            assert_eq!(narrow, whole, "{} in {s:?}", rule.id);
        }
    }

    #[test]
    fn digit_windows_reach_as_far_as_the_longest_match() {
        // Matches as long as the regex allows, with the digit at either end.
        let rules = br#"{"rules":[
          {"id":"tail","min_digits":1,"regex":"[a-z]{0,5}[0-9]"},
          {"id":"head","min_digits":1,"regex":"[0-9][a-z]{0,5}"},
          {"id":"far","min_digits":2,"regex":"\\b[0-9]x{0,9}\\u00e9{0,3}[0-9]"}]}"#;
        let r = Redactor::new(RuleSet::from_json(&[rules]).unwrap(), Mode::Mask);
        assert!(r
            .set
            .rules
            .iter()
            .all(|x| matches!(x.reach, Reach::NearDigits(_))));
        for s in [
            "abcdefgh1",
            "1abcdefgh",
            "zz1zzzzzz2zzzzzz",
            "9xxxxxxxxxéé8",
            "9xxxxxxxxxééé8 and 7xxxxxxxxxééé6",
            "é1éabcde",
        ] {
            assert_reach_finds_all(&r, s);
        }
    }

    #[test]
    fn searching_where_reach_says_finds_what_a_whole_string_search_finds() {
        let r = shipped();
        let pieces = [
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "GHP_",
            "ghp_",
            "ghp_ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "AKIA",
            "AKIAABCDEFGHIJKLMNOP",
            "akiaABCDEFGHIJKLMNOP",
            "xoxb-1234567890-abcdefghij",
            "Bearer abcdefghijklmnopqrstuvwxyz012345",
            "BEARER ",
            "basic dXNlcjpwYXNzd29yZDEyMw==",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "123-45-6789",
            "GB82 WEST 1234 5698 7654 32",
            "GB82WEST12345698765432",
            "0",
            "7",
            "-",
            " ",
            "a",
            "Z",
            "_",
            "é",
            "ſ",
            "\u{212a}",
            "[REDACTED:x]",
            "dev@corp.example.com",
            "https://u:p4ss@h.example.com",
        ];
        let mut x: u64 = 0x853c_49e6_748f_ea9b;
        for round in 0..3000 {
            let mut s = String::new();
            for _ in 0..(round % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push_str(pieces[(x % pieces.len() as u64) as usize]);
            }
            assert_reach_finds_all(&r, &s);
        }
    }

    /// Every `secret` group the redactor reports, read off its matches by
    /// `SecretSplit` or by the capture engine, is the one the `regex`
    /// crate's `captures_iter` reports over the whole string. Run on the
    /// shipped rules, and on custom rules whose sides have several possible
    /// bounds, can be empty, or hold a Unicode `\b` next to non-ASCII text.
    #[test]
    fn secret_groups_read_off_matches_are_the_capture_engines() {
        let shipped = std::fs::read("python/agent_bom/data/redaction-rules.json").unwrap();
        let custom = br#"{"rules":[
          {"id":"spaces","keywords":["k"],"regex":"k\\s*(?P<secret>\\s*[a-z]+\\s*)\\s*;"},
          {"id":"optional-sides","keywords":["k"],"regex":"(?:k=)?(?P<secret>[a-z0-9]+)(?:;|$)?"},
          {"id":"words","keywords":["k"],"regex":"\\bk=(?P<secret>\\w+)\\b"},
          {"id":"whole","keywords":["k"],"regex":"(?P<secret>k[0-9]+)"},
          {"id":"inside","keywords":["k"],"regex":"k(?:=(?P<secret>[a-z]+))?"}]}"#;
        let pieces = [
            "k",
            "=",
            " ",
            ";",
            "é",
            "ſ",
            "abc",
            "0",
            "7",
            "@",
            "://",
            "u:",
            "p@ss",
            "@h.io",
            ".",
            "-",
            "/",
            "\"",
            "\\",
            ":",
            "Bearer ",
            "basic ",
            "dXNlcjpwYXNzd29yZDEy",
            "password=",
            "token: ",
            "aws_secret_access_key=",
            "AccountKey=",
            "?sig=",
            "dev@corp.example.com",
            "https://u:p4ss@h.example.com/x",
            "x\u{e9}@y.com",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCD",
            "\"private_key_id\": \"",
            "0123456789abcdef0123456789abcdef01234567",
            "k abc  ;",
            "k=ab;",
            " ;",
        ];
        let (mut by_split, mut by_captures) = (0, 0);
        for file in [&shipped[..], &custom[..]] {
            let set = RuleSet::from_json(&[file]).unwrap();
            let doc = json::parse(file, 16).unwrap();
            let Some(Value::Array(items)) = field(&doc, "rules") else {
                panic!("no rules")
            };
            let references: Vec<Regex> = items
                .iter()
                .map(|i| Regex::new(field(i, "regex").and_then(Value::as_str).unwrap()).unwrap())
                .collect();
            let mut x: u64 = 0x2545_f491_4f6c_dd1d;
            for round in 0..4000 {
                let mut s = String::new();
                for _ in 0..(round % 12) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    s.push_str(pieces[(x % pieces.len() as u64) as usize]);
                }
                for (rule, reference) in set.rules.iter().zip(&references) {
                    if rule.secret.is_none() {
                        continue;
                    }
                    let expect: Vec<_> = reference
                        .captures_iter(&s)
                        .map(|c| c.name("secret").unwrap_or(c.get(0).unwrap()).range())
                        .collect();
                    let mut got = Vec::new();
                    search_all(rule, Input::new(&s), &mut |m| got.push(m.range()));
                    assert_eq!(got, expect, "{} in {s:?}", rule.id);
                    for m in rule.regex.find_iter(&s) {
                        match rule.split().and_then(|sp| sp.find(s.as_bytes(), m.span())) {
                            Some(_) => by_split += 1,
                            None => by_captures += 1,
                        }
                    }
                }
            }
        }
        // Both ways were taken, the split more often.
        assert!(
            by_captures >= 20 && by_split > 2 * by_captures,
            "{by_split} / {by_captures}"
        );
        // These read their group without a capture engine (the generic
        // assignment's `before` side is past the DFA size limit).
        let set = RuleSet::from_json(&[&shipped]).unwrap();
        for id in [
            "email",
            "url-credentials",
            "bearer-token",
            "basic-auth",
            "azure-sas-signature",
        ] {
            let rule = set.rules.iter().find(|r| r.id == id).unwrap();
            assert!(rule.split().is_some(), "{id}");
        }
    }

    /// Passing over digit rules with no room beside what earlier rules took
    /// changes no output: strings mixing tokens that hold digits with cards,
    /// SSNs and IBANs, next to them or inside them, redact the same either way.
    #[test]
    fn digit_rules_passed_over_beside_taken_spans_would_have_found_nothing() {
        // A digit rule whose `secret` group can lie beside a taken span
        // while the digit its match needs is inside it.
        let custom = br#"{"rules":[
          {"id":"a","keywords":["tok"],"regex":"tok=[0-9]"},
          {"id":"b","min_digits":1,"regex":"[0-9]x(?P<secret>[a-z]{4})"},
          {"id":"c","min_digits":1,"regex":"\\b[0-9]{3}-[0-9]{2}-[0-9]{4}\\b","checksum":"ssn"}]}"#;
        let custom = Redactor::new(RuleSet::from_json(&[custom]).unwrap(), Mode::Mask);
        for text in [
            r#"{"d":"tok=1xabcd"}"#,
            r#"{"d":"tok=123-45-6789 and 234-56-7890"}"#,
        ] {
            TRY_BESIDE_TAKEN.set(true);
            let every = run(&custom, text);
            TRY_BESIDE_TAKEN.set(false);
            assert_eq!(run(&custom, text), every, "{text}");
        }
        assert_eq!(
            run(&custom, r#"{"d":"tok=1xabcd"}"#).0,
            r#"{"d":"[REDACTED:a]x[REDACTED:b]"}"#
        );
        let r = shipped();
        SKIPPED_BESIDE_TAKEN.set(0);
        let pieces = [
            "xoxb-510655632494-251471188988-L3rAVgd5mFVj7nsCuYKt8c8u",
            "xoxb-4111111111111111-",
            "AKIA4111111111111111",
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "123-45-6789",
            "GB82 WEST 1234 5698 7654 32",
            "GB82WEST12345698765432",
            "dev4111111111111111@corp.example.com",
            "https://u:4111111111111111@h.example.com",
            "[REDACTED:x]",
            "4111",
            "1111",
            "123",
            "45-",
            "GB82",
            " ",
            "-",
            "x",
            ";",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let (mut differs, mut redacted) = (0, 0);
        for round in 0..3000 {
            let mut s = String::new();
            for _ in 0..(1 + round % 10) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push_str(pieces[(x % pieces.len() as u64) as usize]);
            }
            let text = format!(
                "{{\"d\":{}}}",
                String::from_utf8(canon::to_vec(&Value::String(s.into()))).unwrap()
            );
            TRY_BESIDE_TAKEN.set(true);
            let every = run(&r, &text);
            TRY_BESIDE_TAKEN.set(false);
            let skipping = run(&r, &text);
            assert_eq!(skipping, every, "{text}");
            let digit_rules: u64 = r.set.digit_rules.iter().map(|&i| every.2[i]).sum();
            redacted += u64::from(digit_rules > 0);
            differs += u64::from(every.1 > 0);
        }
        // Digit rules did find what they could, and were passed over often.
        assert!(
            redacted > 300 && differs > redacted,
            "{redacted} / {differs}"
        );
        assert!(
            SKIPPED_BESIDE_TAKEN.get() > 300,
            "{}",
            SKIPPED_BESIDE_TAKEN.get()
        );
    }

    #[test]
    fn entropy_is_shannons() {
        let plain = |s: &str| {
            let n = s.chars().count() as f64;
            let mut kinds: Vec<char> = s.chars().collect();
            kinds.sort_unstable();
            kinds.dedup();
            let p = kinds
                .iter()
                .map(|k| s.chars().filter(|c| c == k).count() as f64 / n);
            -p.map(|p| p * p.log2()).sum::<f64>()
        };
        for s in [
            "a",
            "ab",
            "aab",
            "abcdefgh",
            "aaaaaaaa",
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "żółw żółw",
        ] {
            assert!((shannon_entropy(s) - plain(s)).abs() < 1e-12, "{s}");
        }
        assert_eq!(shannon_entropy("abcdefgh"), 3.0);
        // Bit for bit what adding every count in character order gives.
        let ordered = |s: &str| {
            let n = s.chars().count().max(1) as f64;
            let mut counts = std::collections::BTreeMap::new();
            for c in s.chars() {
                *counts.entry(c).or_insert(0u32) += 1;
            }
            let repeated: f64 = counts
                .into_values()
                .filter(|&c| c > 1)
                .map(|c| f64::from(c) * f64::from(c).log2())
                .sum();
            n.log2() - repeated / n
        };
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for len in 0..300 {
            let s: String = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b"aab0~zZ9\x7f\x00 QQQq"[(x % 15) as usize])
                })
                .collect();
            assert_eq!(
                shannon_entropy(&s).to_bits(),
                ordered(&s).to_bits(),
                "{s:?}"
            );
        }
        // Every ASCII character, and counts past the table.
        for len in [1, 2, 17, 55, 128, 300, 700] {
            let s: String = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from((x % 128) as u8)
                })
                .collect();
            assert_eq!(
                shannon_entropy(&s).to_bits(),
                ordered(&s).to_bits(),
                "{s:?}"
            );
        }
        // Counts of 128 and more (the byte's high bit), and the longest byte-counted string.
        for s in [
            "a".repeat(200) + "bc",
            "a".repeat(128) + "b",
            "a".repeat(129),
            "\0".repeat(255),
            "~".repeat(254) + "}",
        ] {
            assert_eq!(
                shannon_entropy(&s).to_bits(),
                ordered(&s).to_bits(),
                "{s:?}"
            );
        }
        let long = "ab".repeat(300) + "é";
        assert_eq!(shannon_entropy(&long).to_bits(), ordered(&long).to_bits());
    }

    #[test]
    fn checksums() {
        assert!(luhn_ok("4111-1111-1111-1111") && !luhn_ok("4111111111111112"));
        assert!(iban_ok("DE89 3704 0044 0532 0130 00") && !iban_ok("DE89370400440532013001"));
        assert!(
            ssn_ok("123-45-6789")
                && !ssn_ok("666-45-6789")
                && !ssn_ok("123-00-6789")
                && !ssn_ok("912-45-6789")
        );
    }
}
