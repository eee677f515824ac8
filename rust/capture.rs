//! Bounded capture: producers push events from any thread; a consumer runs them
//! through the stream pipeline into a sink (its order-free stages on
//! `StreamConfig::threads` threads, the writer always on one).
//!
//! The queue is bounded by both a record count and a byte budget, so memory
//! stays flat however slow the sink is. When it is full, a producer blocks
//! (`Block`), the event is dropped and counted (`DropNewest`; the next
//! checkpoint records how many), or the push fails (`Error`).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::lines::{Batch, LineRef};
use crate::pipeline::{
    process_batch_for_capture, CaptureWriter, Redactor, StreamConfig, StreamError, StreamObserver,
    StreamStats,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    Block,
    DropNewest,
    Error,
}

pub enum Entry {
    /// One native event as JSON bytes.
    Event(Vec<u8>),
    /// An annotation recorded as an `audit.integrity` event; time from the caller or the last event.
    Note {
        message: String,
        created_at: Option<String>,
    },
}

impl Entry {
    fn size(&self) -> usize {
        match self {
            Entry::Event(b) => b.len() + 32,
            Entry::Note { message, .. } => message.len() + 96,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    Dropped,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// `WhenFull::Error` and the queue is full.
    Full,
    /// The capture finished or its consumer stopped (see `finish` for why).
    Closed,
}

pub struct CaptureConfig {
    pub stream: StreamConfig,
    pub capacity: usize,
    pub max_bytes: usize,
    pub when_full: WhenFull,
}

struct QueueState {
    items: VecDeque<Entry>,
    bytes: usize,
    closed: bool,
}

struct Queue {
    state: Mutex<QueueState>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
    max_bytes: usize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic while holding the lock cannot leave the queue inconsistent (plain pushes/pops).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the queue and empties it, waking everyone waiting on it: producers must
    /// not wait on a consumer that is gone.
    fn shut(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.items.clear();
        s.bytes = 0;
        drop(s);
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    fn has_room(&self, s: &QueueState, size: usize) -> bool {
        // An entry larger than the whole budget still goes in when the queue is empty.
        s.items.len() < self.capacity && (s.bytes + size <= self.max_bytes || s.items.is_empty())
    }
}

/// Counts the producers see (the consumer's counts come back from `finish`).
#[derive(Default)]
pub struct Counters {
    pub recorded: AtomicU64,
    pub dropped: AtomicU64,
}

pub struct Capture {
    queue: Arc<Queue>,
    when_full: WhenFull,
    counters: Arc<Counters>,
    consumer: Mutex<Option<JoinHandle<Result<StreamStats, StreamError>>>>,
    alg: crate::digest::HashAlg,
}

const TAKE_ITEMS: usize = 1024;
const TAKE_BYTES: usize = 256 * 1024;

impl Capture {
    pub fn start<W: Write + Send + 'static>(
        cfg: CaptureConfig,
        sink: W,
        redactor: Option<Arc<dyn Redactor>>,
        observer: Box<dyn StreamObserver + Send>,
    ) -> Capture {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                bytes: 0,
                closed: false,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity: cfg.capacity.max(1),
            max_bytes: cfg.max_bytes.max(1),
        });
        let counters = Arc::new(Counters::default());
        let (q, c) = (queue.clone(), counters.clone());
        let when_full = cfg.when_full;
        let alg = cfg.stream.alg;
        let consumer = std::thread::Builder::new()
            .name("agent-bom-capture".into())
            .spawn(move || {
                let result = consume(&cfg, &q, &c, sink, redactor.as_deref(), observer);
                q.shut(); // whatever happened
                result
            })
            .map_err(|e| StreamError::Config(format!("cannot start the capture thread: {e}")));
        let consumer = consumer.ok();
        Capture {
            queue,
            when_full,
            counters,
            consumer: Mutex::new(consumer),
            alg,
        }
    }

    pub fn alg(&self) -> crate::digest::HashAlg {
        self.alg
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Queues one entry, applying the full-queue policy.
    pub fn push(&self, e: Entry) -> Result<Pushed, PushError> {
        let size = e.size();
        let mut s = self.queue.lock();
        loop {
            if s.closed {
                return Err(PushError::Closed);
            }
            if self.queue.has_room(&s, size) {
                break;
            }
            match self.when_full {
                WhenFull::Block => {
                    s = self
                        .queue
                        .not_full
                        .wait(s)
                        .unwrap_or_else(|p| p.into_inner())
                }
                WhenFull::DropNewest => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return Ok(Pushed::Dropped);
                }
                WhenFull::Error => return Err(PushError::Full),
            }
        }
        s.items.push_back(e);
        s.bytes += size;
        self.counters.recorded.fetch_add(1, Ordering::Relaxed);
        drop(s);
        self.queue.not_empty.notify_one();
        Ok(Pushed::Queued)
    }

    /// Queues many entries, taking the lock once per run; returns (queued, dropped).
    pub fn push_many(&self, entries: Vec<Entry>) -> Result<(u64, u64), PushError> {
        let (mut queued, mut dropped) = (0u64, 0u64);
        let mut s = self.queue.lock();
        for e in entries {
            let size = e.size();
            loop {
                if s.closed {
                    return Err(PushError::Closed);
                }
                if self.queue.has_room(&s, size) {
                    break;
                }
                match self.when_full {
                    WhenFull::Block => {
                        self.queue.not_empty.notify_one();
                        s = self
                            .queue
                            .not_full
                            .wait(s)
                            .unwrap_or_else(|p| p.into_inner());
                    }
                    WhenFull::DropNewest | WhenFull::Error => break,
                }
            }
            if !self.queue.has_room(&s, size) {
                if self.when_full == WhenFull::Error {
                    self.counters.recorded.fetch_add(queued, Ordering::Relaxed);
                    drop(s);
                    self.queue.not_empty.notify_one();
                    return Err(PushError::Full);
                }
                dropped += 1;
                continue;
            }
            s.items.push_back(e);
            s.bytes += size;
            queued += 1;
        }
        drop(s);
        self.counters.recorded.fetch_add(queued, Ordering::Relaxed);
        self.counters.dropped.fetch_add(dropped, Ordering::Relaxed);
        self.queue.not_empty.notify_one();
        Ok((queued, dropped))
    }

    /// Closes the queue, waits for the consumer to write everything, and returns its stats.
    pub fn finish(&self) -> Result<StreamStats, StreamError> {
        {
            let mut s = self.queue.lock();
            s.closed = true;
        }
        self.queue.not_empty.notify_all();
        self.queue.not_full.notify_all();
        let handle = self
            .consumer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match handle {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(StreamError::Config("capture thread panicked".into()))),
            None => Err(StreamError::Config(
                "capture already finished (or never started)".into(),
            )),
        }
    }
}

impl Drop for Capture {
    /// A capture dropped without `finish` still lets its consumer drain what was
    /// queued and exit. No join here: the consumer may need the GIL the dropping
    /// thread holds.
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.not_empty.notify_all();
        self.queue.not_full.notify_all();
    }
}

/// One step of the consumer, in record order: a run of events, a note, or the end of
/// what one take from the queue held (the point to flush the sink at).
enum Step {
    Events(Batch),
    Note {
        record_no: u64,
        message: String,
        created_at: Option<String>,
    },
    Flush,
}

/// Takes what is queued (up to `TAKE_ITEMS` / `TAKE_BYTES`, waiting while it is
/// empty) into `taken` (empty, reused across takes) and turns it into steps; false
/// once the queue is closed and drained.
fn take(
    q: &Queue,
    taken: &mut Vec<Entry>,
    record_no: &mut u64,
    batch_index: &mut u64,
    steps: &mut Vec<Step>,
) -> bool {
    {
        let mut s = q.lock();
        while s.items.is_empty() && !s.closed {
            s = q.not_empty.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.items.is_empty() {
            return false; // closed and drained
        }
        let mut bytes = 0;
        while let Some(e) = s.items.pop_front() {
            let size = e.size();
            s.bytes -= size;
            bytes += size;
            taken.push(e);
            if taken.len() >= TAKE_ITEMS || bytes >= TAKE_BYTES {
                break;
            }
        }
    }
    q.not_full.notify_all();
    // Runs of events go through the batch stages; notes go to the writer, in order.
    let mut batch = Batch {
        index: *batch_index,
        data: Vec::new(),
        lines: Vec::new(),
    };
    for e in taken.drain(..) {
        *record_no += 1;
        match e {
            Entry::Event(bytes) => {
                let start = batch.data.len();
                batch.data.extend_from_slice(&bytes);
                batch.lines.push(LineRef {
                    number: *record_no,
                    start,
                    end: batch.data.len(),
                    overlong: None,
                });
            }
            Entry::Note {
                message,
                created_at,
            } => {
                if !batch.lines.is_empty() {
                    *batch_index += 1;
                    let next = Batch {
                        index: *batch_index,
                        data: Vec::new(),
                        lines: Vec::new(),
                    };
                    steps.push(Step::Events(std::mem::replace(&mut batch, next)));
                }
                steps.push(Step::Note {
                    record_no: *record_no,
                    message,
                    created_at,
                });
            }
        }
    }
    if !batch.lines.is_empty() {
        *batch_index += 1;
        steps.push(Step::Events(batch));
    }
    steps.push(Step::Flush);
    true
}

/// A step once its batch went through the stages.
enum Done {
    Events(crate::pipeline::Processed),
    Note {
        record_no: u64,
        message: String,
        created_at: Option<String>,
    },
    Flush,
}

/// The order-free work of a step: a batch through the stages; the rest as it is.
fn run_step(
    step: Step,
    cfg: &StreamConfig,
    redactor: Option<&dyn Redactor>,
    scratch: &mut crate::pipeline::Scratches,
) -> Done {
    match step {
        Step::Events(b) => Done::Events(process_batch_for_capture(&b, cfg, redactor, scratch)),
        Step::Note {
            record_no,
            message,
            created_at,
        } => Done::Note {
            record_no,
            message,
            created_at,
        },
        Step::Flush => Done::Flush,
    }
}

fn write_step<W: Write>(
    writer: &mut CaptureWriter<'_, W>,
    done: Done,
    observer: &mut dyn StreamObserver,
) -> Result<(), StreamError> {
    match done {
        Done::Events(p) => writer.consume(&p, observer),
        Done::Note {
            record_no,
            message,
            created_at,
        } => writer.note(record_no, &message, created_at.as_deref(), observer),
        Done::Flush => writer.flush(),
    }
}

fn consume<W: Write>(
    cfg: &CaptureConfig,
    q: &Queue,
    counters: &Counters,
    mut sink: W,
    redactor: Option<&dyn Redactor>,
    mut observer: Box<dyn StreamObserver + Send>,
) -> Result<StreamStats, StreamError> {
    let rule_ids = redactor.map(|r| r.rule_ids()).unwrap_or_default();
    let mut writer = CaptureWriter::for_capture(&cfg.stream, &mut sink, &counters.dropped);
    let (mut record_no, mut batch_index) = (0u64, 0u64);
    let mut steps: Vec<Step> = Vec::new();
    let mut taken: Vec<Entry> = Vec::with_capacity(TAKE_ITEMS);
    if cfg.stream.threads <= 1 {
        let mut scratch = crate::pipeline::Scratches::default();
        while take(q, &mut taken, &mut record_no, &mut batch_index, &mut steps) {
            for step in steps.drain(..) {
                let done = run_step(step, &cfg.stream, redactor, &mut scratch);
                write_step(&mut writer, done, observer.as_mut())?;
            }
        }
        return writer.finish(&rule_ids);
    }

    // Several threads run the batch stages; this one writes in step order. Every step
    // goes through the bounded work channel, notes too, so the taker is never more
    // than ~5 × threads steps ahead of the writer: that bounds what is in flight
    // beyond the queue's own budget.
    let threads = cfg.stream.threads;
    let (work_tx, work_rx) = crossbeam_channel::bounded::<(u64, Step)>(threads * 2);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<(u64, Done)>(threads * 2);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut n = 0u64; // step number: the writer's order
            while take(q, &mut taken, &mut record_no, &mut batch_index, &mut steps) {
                for step in steps.drain(..) {
                    if work_tx.send((n, step)).is_err() {
                        return; // the writer stopped
                    }
                    n += 1;
                }
            }
        });
        for _ in 0..threads {
            let (rx, tx) = (work_rx.clone(), done_tx.clone());
            scope.spawn(move || {
                let mut scratch = crate::pipeline::Scratches::default();
                for (n, step) in rx {
                    let done = run_step(step, &cfg.stream, redactor, &mut scratch);
                    if tx.send((n, done)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(work_rx);
        drop(done_tx);
        let mut pending: std::collections::BTreeMap<u64, Done> = Default::default();
        let mut next = 0u64;
        let mut result = Ok(());
        'recv: for (n, d) in &done_rx {
            pending.insert(n, d);
            while let Some(d) = pending.remove(&next) {
                next += 1;
                if let Err(e) = write_step(&mut writer, d, observer.as_mut()) {
                    result = Err(e);
                    break 'recv;
                }
            }
        }
        if result.is_err() {
            q.shut(); // nor may the taker wait on a writer that is gone
        }
        drop(done_rx); // unblocks the taker and the workers
        result?;
        writer.finish(&rule_ids)
    })
}
