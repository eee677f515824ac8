//! Bounded NDJSON line reader shared by the stream pipeline and the verifier.
//!
//! Reads fixed-size chunks and hands out batches of complete lines. A line
//! longer than the limit is never materialized: its first bytes are kept for
//! the report and the rest is skipped up to the next newline.

use std::io::{self, Read};

use crate::digest::Hasher;

/// Bytes of an over-long line kept so the report can show what it was.
pub const OVERLONG_PREFIX: usize = 4096;
const CHUNK: usize = 256 * 1024;
const BATCH_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_line_bytes: usize,
    pub max_depth: usize,
    pub max_records: u64,
}

/// One input line inside a batch's buffer.
#[derive(Debug, Clone, Copy)]
pub struct LineRef {
    /// 1-based line number in the input.
    pub number: u64,
    pub start: usize,
    pub end: usize,
    /// Set when the line was longer than the limit: its full length; only a prefix is in the buffer.
    pub overlong: Option<u64>,
}

pub struct Batch {
    pub index: u64,
    pub data: Vec<u8>,
    pub lines: Vec<LineRef>,
}

impl Batch {
    pub fn line(&self, r: &LineRef) -> &[u8] {
        &self.data[r.start..r.end]
    }
}

pub struct BatchReader<R> {
    src: R,
    limits: Limits,
    /// Input in `buf[..filled]`; the rest is initialized room for the next read.
    buf: Vec<u8>,
    filled: usize,
    /// Start of the unconsumed part of `buf`.
    pos: usize,
    eof: bool,
    line_no: u64,
    batch_index: u64,
    /// Skipping the rest of an over-long line: (its line number, bytes so far, kept prefix).
    skipping: Option<(u64, u64, Vec<u8>)>,
    pub bytes_read: u64,
    digest: Option<Hasher>,
}

impl<R: Read> BatchReader<R> {
    pub fn new(src: R, limits: Limits, digest: Option<Hasher>) -> Self {
        BatchReader {
            src,
            limits,
            buf: Vec::with_capacity(CHUNK * 2),
            filled: 0,
            pos: 0,
            eof: false,
            line_no: 0,
            batch_index: 0,
            skipping: None,
            bytes_read: 0,
            digest,
        }
    }

    /// Digest of every byte read so far (consumes the hasher; call at the end).
    pub fn take_digest(&mut self) -> Option<crate::digest::Digest> {
        self.digest.take().map(Hasher::finish)
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.pos = 0;
        }
        let old = self.filled;
        // Buffers are recycled at their full length, so this zero-fills only
        // memory that was never read into.
        if self.buf.len() < old + CHUNK {
            self.buf.resize(old + CHUNK, 0);
        }
        let n = loop {
            match self.src.read(&mut self.buf[old..old + CHUNK]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.filled = old + n;
        if let Some(h) = self.digest.as_mut() {
            h.update(&self.buf[old..self.filled]);
        }
        self.bytes_read += n as u64;
        if n == 0 {
            self.eof = true;
        }
        Ok(())
    }

    /// Next batch of complete lines, or None at the end of input.
    pub fn next_batch(&mut self) -> io::Result<Option<Batch>> {
        self.next_batch_reusing(None)
    }

    /// Like `next_batch`; `spare` is a buffer from an earlier batch to reuse
    /// (fresh large buffers cost page faults). The read buffer itself becomes
    /// the batch: only the trailing partial line is copied forward.
    pub fn next_batch_reusing(&mut self, spare: Option<Vec<u8>>) -> io::Result<Option<Batch>> {
        loop {
            if self.skipping.is_some() {
                if let Some(batch) = self.skip_overlong()? {
                    return Ok(Some(batch));
                }
                continue;
            }
            let avail = self.filled - self.pos;
            if avail < BATCH_BYTES && !self.eof {
                self.fill()?;
                continue;
            }
            let region = &self.buf[self.pos..self.filled];
            match memchr::memrchr(b'\n', region) {
                Some(last) => return Ok(Some(self.cut_batch(self.pos + last + 1, spare))),
                None if self.eof => {
                    if region.is_empty() {
                        return Ok(None);
                    }
                    let end = self.filled;
                    return Ok(Some(self.cut_batch(end, spare))); // last line has no newline
                }
                None if region.len() > self.limits.max_line_bytes => {
                    self.line_no += 1;
                    let keep = region[..OVERLONG_PREFIX.min(region.len())].to_vec();
                    self.skipping = Some((self.line_no, 0, keep));
                }
                None => self.fill()?,
            }
        }
    }

    /// Hands out `buf[pos..cut]` (whole lines) as a batch; the rest moves to a new buffer.
    fn cut_batch(&mut self, cut: usize, spare: Option<Vec<u8>>) -> Batch {
        let mut next = spare.unwrap_or_else(|| Vec::with_capacity(CHUNK * 2 + BATCH_BYTES));
        let tail = self.filled - cut;
        if next.len() < tail {
            next.resize(tail, 0);
        }
        next[..tail].copy_from_slice(&self.buf[cut..self.filled]);
        let mut data = std::mem::replace(&mut self.buf, next);
        self.filled = tail;
        data.truncate(cut);
        let mut start = std::mem::take(&mut self.pos);
        let mut lines = Vec::with_capacity((cut - start) / 512 + 4);
        while start < cut {
            let end = memchr::memchr(b'\n', &data[start..cut]).map_or(cut, |i| start + i);
            self.line_no += 1;
            let len = end - start;
            let (kept, overlong) = if len > self.limits.max_line_bytes {
                (start + OVERLONG_PREFIX.min(len), Some(len as u64))
            } else {
                (end, None)
            };
            lines.push(LineRef {
                number: self.line_no,
                start,
                end: kept,
                overlong,
            });
            start = end + 1;
        }
        let index = self.batch_index;
        self.batch_index += 1;
        Batch { index, data, lines }
    }

    /// Skips the rest of an over-long line; returns it (as its kept prefix) once its end is found.
    fn skip_overlong(&mut self) -> io::Result<Option<Batch>> {
        let avail = &self.buf[self.pos..self.filled];
        let found = memchr::memchr(b'\n', avail);
        let Some((number, seen, prefix)) = self.skipping.as_mut() else {
            return Ok(None);
        };
        match found {
            Some(i) => {
                *seen += i as u64;
                self.pos += i + 1;
            }
            None => {
                *seen += avail.len() as u64;
                self.pos = self.filled;
                if !self.eof {
                    self.fill()?;
                    return Ok(None);
                }
            }
        }
        let (number, seen, prefix) = (*number, *seen, std::mem::take(prefix));
        self.skipping = None;
        let end = prefix.len();
        let index = self.batch_index;
        self.batch_index += 1;
        Ok(Some(Batch {
            index,
            data: prefix,
            lines: vec![LineRef {
                number,
                start: 0,
                end,
                overlong: Some(seen),
            }],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8], max: usize) -> Vec<(u64, Vec<u8>, Option<u64>)> {
        let limits = Limits {
            max_line_bytes: max,
            max_depth: 64,
            max_records: u64::MAX,
        };
        let mut r = BatchReader::new(input, limits, None);
        let mut out = Vec::new();
        while let Some(b) = r.next_batch().unwrap() {
            for l in &b.lines {
                out.push((l.number, b.line(l).to_vec(), l.overlong));
            }
        }
        out
    }

    #[test]
    fn splits_lines_and_keeps_a_final_unterminated_line() {
        let got = read_all(b"a\n\nbc\nd", 100);
        assert_eq!(
            got,
            vec![
                (1, b"a".to_vec(), None),
                (2, b"".to_vec(), None),
                (3, b"bc".to_vec(), None),
                (4, b"d".to_vec(), None)
            ]
        );
    }

    #[test]
    fn overlong_lines_are_cut_without_losing_line_numbers() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 3 * CHUNK + 17));
        input.extend_from_slice(b"\nafter\n");
        let got = read_all(&input, 1000);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0, 2);
        assert_eq!(got[1].1.len(), OVERLONG_PREFIX);
        assert_eq!(got[1].2, Some(3 * CHUNK as u64 + 17));
        assert_eq!(got[2], (3, b"after".to_vec(), None));
    }
}
