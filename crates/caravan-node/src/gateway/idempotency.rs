//! `Idempotency-Key`: a retried request returns the first result and is charged once.
//!
//! OpenAI's clients retry a POST after a timeout or a 5xx, and without a key a retry is a second
//! charge. With a key, the first request's response is kept for a day and replayed; the same key
//! with a different body is refused; a retry while the first is still running is told to try
//! again (409, which clients retry). Charges carry `keccak(payer ‖ key)` in the log, so after a
//! restart the node still knows a request was charged, even though the response it gave is gone.
//!
//! Responses are held in memory up to a byte budget ([`RESPONSE_BUDGET_BYTES`]): past it the
//! oldest are let go from memory, and their requests go into a Bloom filter of the day's
//! charged requests ([`ChargedFilter`]), whose size is fixed whatever the traffic. The store
//! indexes every charged request by id in the charge's own transaction, so when the filter says
//! "maybe", one point read of that index says whether it really was charged: a false positive
//! costs a read, never a charge, and a true one is never missed. So a client that sends a key
//! with every call grows the node's memory by neither its answers nor its ids.
//! Each response up to [`KEPT_ANSWER_MAX_BYTES`] is also kept in the store for the day (see
//! [`Stored::encode`]), so a retry after a restart, or after its response left memory, is still
//! answered with it; a retry whose response is in neither place is told it was charged (and is
//! not charged again).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use caravan_core::hash::keccak256_parts;
use caravan_core::{Address, Hash32};

/// How long a response is kept for replay: as long as the store indexes a charged request.
pub const RETENTION_MS: u64 = caravan_store::CHARGED_REQUESTS_KEPT_MS;

/// The most memory the responses held for replay may take: about the last minute's answers of
/// a node serving 500 keyed calls a second. Clients retry within seconds; an older retry is
/// answered from the store, with one point read.
pub const RESPONSE_BUDGET_BYTES: usize = 32 * 1024 * 1024;

/// The largest response kept in the store as well as in memory: above every answer the gateway
/// gives to a valid request (2,048 embeddings of 384 numbers as JSON take about 9 MB), so the
/// limit only stops a stream of unusual length from taking the log writer's time.
pub const KEPT_ANSWER_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The version byte that starts an encoded [`Stored`].
const ENCODING_VERSION: u8 = 1;

/// The id a payer's idempotency key stands for.
pub fn request_id(payer: &Address, key: &str) -> Hash32 {
    keccak256_parts(&[b"caravan/idempotency/v1", &payer.0, key.as_bytes()])
}

/// A response kept for replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Stored {
    /// The bytes the store keeps: a version byte, the status, the headers and the body, each
    /// length-prefixed (big-endian), so any body — JSON, an event stream — comes back exactly.
    pub fn encode(&self) -> Vec<u8> {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| 8 + n.len() + v.len())
            .sum();
        let mut out = Vec::with_capacity(11 + headers + self.body.len());
        out.push(ENCODING_VERSION);
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&(self.headers.len() as u32).to_be_bytes());
        for (name, value) in &self.headers {
            for text in [name, value] {
                out.extend_from_slice(&(text.len() as u32).to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
        out.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// What [`Stored::encode`] wrote, or `None` for bytes it did not write.
    pub fn decode(bytes: &[u8]) -> Option<Stored> {
        let mut reader = Reader(bytes);
        if reader.take(1)? != [ENCODING_VERSION] {
            return None;
        }
        let status = u16::from_be_bytes(reader.take(2)?.try_into().ok()?);
        let count = reader.length()?;
        let mut headers = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let name = reader.text()?;
            headers.push((name, reader.text()?));
        }
        let length = reader.length()?;
        let body = Bytes::copy_from_slice(reader.take(length)?);
        reader.0.is_empty().then_some(Stored {
            status,
            headers,
            body,
        })
    }

    /// About how much memory it holds.
    fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.len() + value.len() + 48)
            .sum();
        std::mem::size_of::<Stored>() + headers + self.body.len()
    }
}

/// Reads what [`Stored::encode`] wrote, front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.0.split_at_checked(count)?;
        self.0 = rest;
        Some(taken)
    }

    fn length(&mut self) -> Option<usize> {
        let bytes: [u8; 4] = self.take(4)?.try_into().ok()?;
        usize::try_from(u32::from_be_bytes(bytes)).ok()
    }

    fn text(&mut self) -> Option<String> {
        let length = self.length()?;
        String::from_utf8(self.take(length)?.to_vec()).ok()
    }
}

/// A response just finished: what the store keeps beside it, so that a retry the memory no
/// longer answers can still be checked and answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    /// The hash of the request body it answered.
    pub fingerprint: Hash32,
    /// When the request was admitted; the response is kept for [`RETENTION_MS`] from then.
    pub admitted_ms: u64,
}

/// A request this node admitted whose response is not yet let go of.
enum Entry {
    InFlight {
        fingerprint: Hash32,
    },
    Done {
        fingerprint: Hash32,
        response: Stored,
    },
    /// Charged before its response exists (a stream): never run again, and kept once finished.
    Charged {
        fingerprint: Hash32,
    },
}

/// What to do with a request that carries a key.
pub enum Admission {
    /// First time: run it, then [`Idempotency::finish`] or [`Idempotency::abandon`].
    Run,
    Replay(Stored),
    InFlight,
    DifferentBody,
    ChargedEarlier,
}

/// What memory alone says about a request that carries a key.
pub enum Remembered {
    Settled(Admission),
    /// Memory no longer holds it, and the filter of requests charged earlier may contain it:
    /// the store's index says whether it was charged; if it was not,
    /// [`Idempotency::admit_uncharged`] admits it.
    MaybeCharged,
}

/// How long one generation of the [`ChargedFilter`] takes requests in.
const GENERATION_MS: u64 = RETENTION_MS / 4;
/// Bits in one generation's filter: 1 MiB. At 600,000 keyed calls in a generation (about 28 a
/// second) a new request is taken for a charged one about 4 times in 1,000; at 20 times that
/// traffic most are, and each then costs one point read.
const GENERATION_BITS: usize = 1 << 23;
/// Bits set (and checked) per request.
const PROBES: usize = 4;

/// The requests charged in the last day that memory holds no answer for, as Bloom filters, one
/// per quarter of a day: a generation is dropped once every request in it is a day old, so at
/// most five are kept and memory stays under 5 MiB whatever the traffic. Never says "no" for a
/// request it was given within the day; may say "maybe" for one it was not.
#[derive(Default)]
pub struct ChargedFilter {
    /// Each generation's bits (allocated when its first request comes), by
    /// `admitted_ms / GENERATION_MS`.
    generations: BTreeMap<u64, Vec<u64>>,
}

impl ChargedFilter {
    /// The bits `request` sets: request ids are keccak-256 hashes, so their bytes are already
    /// uniform and independent.
    fn bits(request: &Hash32) -> impl Iterator<Item = usize> + '_ {
        request.0.chunks_exact(4).take(PROBES).map(|chunk| {
            let word = u32::from_le_bytes(chunk.try_into().expect("chunks of four"));
            word as usize % GENERATION_BITS
        })
    }

    /// Takes in a request charged at `admitted_ms`.
    pub fn insert(&mut self, request: &Hash32, admitted_ms: u64) {
        let words = self
            .generations
            .entry(admitted_ms / GENERATION_MS)
            .or_insert_with(|| vec![0; GENERATION_BITS / 64]);
        for bit in ChargedFilter::bits(request) {
            words[bit / 64] |= 1 << (bit % 64);
        }
    }

    /// Whether `request` may have been taken in.
    pub fn may_contain(&self, request: &Hash32) -> bool {
        self.generations.values().any(|words| {
            ChargedFilter::bits(request).all(|bit| words[bit / 64] & (1 << (bit % 64)) != 0)
        })
    }

    /// Drops the generations whose every request was admitted a day or more before `now_ms`.
    pub fn forget_expired(&mut self, now_ms: u64) {
        let expired_before = now_ms.saturating_sub(RETENTION_MS) / GENERATION_MS;
        self.generations = self.generations.split_off(&expired_before);
    }

    /// How many bytes its filters take.
    pub fn bytes(&self) -> usize {
        self.generations.len() * GENERATION_BITS / 8
    }
}

/// Entries are pruned of expired ones when they grow past this, and then only again once they
/// have doubled, so a day with many live keys does not scan them all on every request.
const FIRST_PRUNE_AT: usize = 10_000;

pub struct Idempotency {
    entries: Mutex<Entries>,
}

struct Entries {
    /// Requests running, or whose response is held, with when they were admitted.
    live: HashMap<Hash32, (u64, Entry)>,
    /// Requests charged within the day whose response memory does not hold (let go for the
    /// budget, or charged before this node started): a retry of one is looked up in the store.
    charged: ChargedFilter,
    prune_at: usize,
    /// Requests whose responses are held, oldest first, with when they were admitted (an
    /// entry that no longer matches its request's is stale and skipped).
    held: VecDeque<(Hash32, u64)>,
    held_bytes: usize,
    budget_bytes: usize,
}

impl Entries {
    /// Marks a held response as gone from memory.
    fn release(&mut self, response: &Stored) {
        self.held_bytes -= response.size();
    }

    /// Lets the oldest responses go until the rest fit the budget; their requests stay known
    /// as charged.
    fn fit_budget(&mut self) {
        while self.held_bytes > self.budget_bytes {
            let Some((request, at)) = self.held.pop_front() else {
                break;
            };
            if !matches!(self.live.get(&request), Some((admitted, Entry::Done { .. })) if *admitted == at)
            {
                continue;
            }
            if let Some((admitted, Entry::Done { response, .. })) = self.live.remove(&request) {
                self.release(&response);
                self.charged.insert(&request, admitted);
            }
        }
    }

    /// Forgets every request admitted a day or more before `now_ms` (but none still running).
    fn prune(&mut self, now_ms: u64) {
        let mut released = 0;
        self.live.retain(|_, (at, entry)| {
            let keep = matches!(entry, Entry::InFlight { .. })
                || now_ms.saturating_sub(*at) < RETENTION_MS;
            if let (false, Entry::Done { response, .. }) = (keep, &entry) {
                released += response.size();
            }
            keep
        });
        self.held_bytes -= released;
        let Entries { live, held, .. } = self;
        held.retain(|(request, at)| {
            matches!(live.get(request), Some((admitted, Entry::Done { .. })) if admitted == at)
        });
        self.prune_at = FIRST_PRUNE_AT.max(2 * self.live.len());
    }
}

impl Default for Idempotency {
    fn default() -> Self {
        Idempotency::with_budget(RESPONSE_BUDGET_BYTES)
    }
}

impl Idempotency {
    /// Holds at most about `budget_bytes` of responses for replay.
    pub fn with_budget(budget_bytes: usize) -> Idempotency {
        Idempotency {
            entries: Mutex::new(Entries {
                live: HashMap::new(),
                charged: ChargedFilter::default(),
                prune_at: FIRST_PRUNE_AT,
                held: VecDeque::new(),
                held_bytes: 0,
                budget_bytes,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .expect("the idempotency lock is never poisoned")
    }

    /// Remembers a request that was charged but whose response is not held (from the log after
    /// a restart, or a stream the client left).
    pub fn charged_earlier(&self, request: Hash32, at_ms: u64) {
        let mut entries = self.lock();
        if let Some((_, Entry::Done { response, .. })) = entries.live.remove(&request) {
            entries.release(&response);
        }
        entries.charged.insert(&request, at_ms);
    }

    /// Marks an admitted request as charged before its response exists: from here on a retry
    /// is never run (and charged) again, even if the response is never finished.
    pub fn charged(&self, request: Hash32) {
        let mut entries = self.lock();
        if let Some((_, entry)) = entries.live.get_mut(&request)
            && let Entry::InFlight { fingerprint } = entry
        {
            *entry = Entry::Charged {
                fingerprint: *fingerprint,
            };
        }
    }

    /// Admits a request with id `request` and body `fingerprint` at `now_ms`, as far as memory
    /// can tell.
    pub fn admit(&self, request: Hash32, fingerprint: Hash32, now_ms: u64) -> Remembered {
        let mut entries = self.lock();
        if entries.live.len() > entries.prune_at {
            entries.prune(now_ms);
        }
        entries.charged.forget_expired(now_ms);
        if !entries.live.contains_key(&request) && entries.charged.may_contain(&request) {
            return Remembered::MaybeCharged;
        }
        Remembered::Settled(Idempotency::admit_locked(
            &mut entries,
            request,
            fingerprint,
            now_ms,
        ))
    }

    /// Admits a request the filter took for a charged one, once the store said it was not
    /// charged within the day.
    pub fn admit_uncharged(&self, request: Hash32, fingerprint: Hash32, now_ms: u64) -> Admission {
        Idempotency::admit_locked(&mut self.lock(), request, fingerprint, now_ms)
    }

    fn admit_locked(
        entries: &mut Entries,
        request: Hash32,
        fingerprint: Hash32,
        now_ms: u64,
    ) -> Admission {
        match entries.live.get(&request) {
            Some((at, _)) if now_ms.saturating_sub(*at) >= RETENTION_MS => {}
            Some((_, Entry::InFlight { fingerprint: first })) => {
                return if *first == fingerprint {
                    Admission::InFlight
                } else {
                    Admission::DifferentBody
                };
            }
            Some((
                _,
                Entry::Done {
                    fingerprint: first,
                    response,
                },
            )) => {
                return if *first == fingerprint {
                    Admission::Replay(response.clone())
                } else {
                    Admission::DifferentBody
                };
            }
            Some((_, Entry::Charged { .. })) => return Admission::ChargedEarlier,
            None => {}
        }
        let expired = entries
            .live
            .insert(request, (now_ms, Entry::InFlight { fingerprint }));
        if let Some((_, Entry::Done { response, .. })) = expired {
            entries.release(&response);
        }
        Admission::Run
    }

    /// Keeps the response of an admitted request (running, or already marked charged) for
    /// replay; says what the store should keep with it, or `None` if the request is not one this
    /// node admitted (or it already has a response).
    pub fn finish(&self, request: Hash32, response: Stored) -> Option<Finished> {
        let mut entries = self.lock();
        let (admitted, entry) = entries.live.get_mut(&request)?;
        let fingerprint = match entry {
            Entry::InFlight { fingerprint } | Entry::Charged { fingerprint } => *fingerprint,
            Entry::Done { .. } => return None,
        };
        let admitted = *admitted;
        let size = response.size();
        *entry = Entry::Done {
            fingerprint,
            response,
        };
        entries.held_bytes += size;
        entries.held.push_back((request, admitted));
        entries.fit_budget();
        Some(Finished {
            fingerprint,
            admitted_ms: admitted,
        })
    }

    /// Forgets an admitted request that charged nothing (it failed), so a retry runs again.
    pub fn abandon(&self, request: Hash32) {
        let mut entries = self.lock();
        if matches!(
            entries.live.get(&request),
            Some((_, Entry::InFlight { .. }))
        ) {
            entries.live.remove(&request);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What memory says, for a request memory settles on its own.
    fn admit(idempotency: &Idempotency, request: Hash32, body: Hash32, now_ms: u64) -> Admission {
        match idempotency.admit(request, body, now_ms) {
            Remembered::Settled(admission) => admission,
            Remembered::MaybeCharged => panic!("memory should settle this request"),
        }
    }

    fn stored(body: &'static str) -> Stored {
        Stored {
            status: 200,
            headers: vec![],
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn a_retry_replays_a_different_body_is_refused_and_a_failure_can_be_retried() {
        let idempotency = Idempotency::default();
        let shop = Address::from_label("shop");
        let request = request_id(&shop, "order-17");
        assert_ne!(
            request,
            request_id(&Address::from_label("other"), "order-17")
        );
        let body = caravan_core::keccak256(b"{}");
        let other = caravan_core::keccak256(b"{\"x\":1}");
        assert!(matches!(
            admit(&idempotency, request, body, 0),
            Admission::Run
        ));
        assert!(matches!(
            admit(&idempotency, request, body, 1),
            Admission::InFlight
        ));
        idempotency.finish(request, stored("first"));
        match admit(&idempotency, request, body, 2) {
            Admission::Replay(response) => assert_eq!(response.body, "first"),
            _ => panic!("a finished request replays"),
        }
        assert!(matches!(
            admit(&idempotency, request, other, 3),
            Admission::DifferentBody
        ));
        // A day later the key may be used afresh.
        assert!(matches!(
            admit(&idempotency, request, other, RETENTION_MS),
            Admission::Run
        ));
        idempotency.abandon(request);
        assert!(matches!(
            admit(&idempotency, request, other, RETENTION_MS),
            Admission::Run
        ));

        // Marked charged before its response exists: a retry is refused until the response is
        // kept, then replayed.
        let streamed = request_id(&shop, "stream-1");
        assert!(matches!(
            admit(&idempotency, streamed, body, 4),
            Admission::Run
        ));
        idempotency.charged(streamed);
        idempotency.abandon(streamed);
        assert!(matches!(
            admit(&idempotency, streamed, body, 5),
            Admission::ChargedEarlier
        ));
        idempotency.finish(streamed, stored("streamed"));
        assert!(matches!(
            admit(&idempotency, streamed, body, 6),
            Admission::Replay(_)
        ));

        // Charged before a restart: memory cannot settle it, the store must.
        let earlier = request_id(&shop, "before-restart");
        idempotency.charged_earlier(earlier, 5);
        assert!(matches!(
            idempotency.admit(earlier, body, 6),
            Remembered::MaybeCharged
        ));
        // Once the store said it was not charged within the day, it runs.
        assert!(matches!(
            idempotency.admit_uncharged(earlier, body, 6),
            Admission::Run
        ));
    }

    #[test]
    fn a_kept_answer_decodes_to_itself_and_any_other_bytes_are_refused() {
        let answer = Stored {
            status: 200,
            headers: vec![
                ("content-type".into(), "text/event-stream".into()),
                ("caravan-receipt".into(), "eyJjYWxsIjoiY2hhdC0xIn0=".into()),
            ],
            body: Bytes::from("data: {\"content\":\"caf\u{e9} \u{1f600}\"}\n\ndata: [DONE]\n\n"),
        };
        let encoded = answer.encode();
        assert_eq!(Stored::decode(&encoded), Some(answer.clone()));
        let empty = Stored {
            status: 409,
            headers: vec![],
            body: Bytes::new(),
        };
        assert_eq!(Stored::decode(&empty.encode()), Some(empty));
        // Cut anywhere, lengthened, or from another version: refused, never half read.
        for cut in 0..encoded.len() {
            assert_eq!(Stored::decode(&encoded[..cut]), None, "cut at {cut}");
        }
        let mut longer = encoded.clone();
        longer.push(0);
        assert_eq!(Stored::decode(&longer), None);
        let mut other_version = encoded;
        other_version[0] = 2;
        assert_eq!(Stored::decode(&other_version), None);
    }

    #[test]
    fn expired_keys_are_pruned_once_the_map_grows_and_live_ones_are_kept() {
        let idempotency = Idempotency::default();
        let shop = Address::from_label("shop");
        let body = caravan_core::keccak256(b"{}");
        for n in 0..FIRST_PRUNE_AT {
            let request = request_id(&shop, &n.to_string());
            admit(&idempotency, request, body, 0);
            idempotency.finish(request, stored("old"));
        }
        let running = request_id(&shop, "running");
        assert!(matches!(
            admit(&idempotency, running, body, 0),
            Admission::Run
        ));
        // Past the threshold, the next admission drops every finished entry older than a day,
        // but never one still running.
        let live = request_id(&shop, "live");
        admit(&idempotency, live, body, RETENTION_MS);
        let entries = idempotency.lock();
        assert_eq!(entries.live.len(), 2);
        assert_eq!(entries.charged.bytes(), 0);
        assert!(entries.live.contains_key(&live));
        assert!(entries.live.contains_key(&running));
        assert_eq!(entries.prune_at, FIRST_PRUNE_AT);
        // The responses dropped no longer count against the memory budget.
        assert_eq!(entries.held_bytes, 0);
        assert!(entries.held.is_empty());
    }

    #[test]
    fn responses_past_the_memory_budget_are_let_go_oldest_first_and_never_charged_twice() {
        let one = stored("a response of some length").size();
        let idempotency = Idempotency::with_budget(3 * one);
        let shop = Address::from_label("shop");
        let body = caravan_core::keccak256(b"{}");
        let requests: Vec<Hash32> = (0..5)
            .map(|n| request_id(&shop, &format!("call-{n}")))
            .collect();
        for (n, request) in requests.iter().enumerate() {
            assert!(matches!(
                admit(&idempotency, *request, body, n as u64),
                Admission::Run
            ));
            idempotency.finish(*request, stored("a response of some length"));
        }
        assert_eq!(idempotency.lock().held_bytes, 3 * one);
        // The two oldest are no longer replayed: memory holds them only in the filter, which
        // sends them to the store; the newest three still replay.
        assert_eq!(idempotency.lock().live.len(), 3);
        for (n, request) in requests.iter().enumerate() {
            let remembered = idempotency.admit(*request, body, 10);
            if n < 2 {
                assert!(matches!(remembered, Remembered::MaybeCharged), "call-{n}");
            } else {
                assert!(
                    matches!(remembered, Remembered::Settled(Admission::Replay(_))),
                    "call-{n}"
                );
            }
        }
        // A day on, an expired response that is used afresh stops counting against the budget.
        let again = requests[4];
        assert!(matches!(
            admit(&idempotency, again, body, 4 + RETENTION_MS),
            Admission::Run
        ));
        assert_eq!(idempotency.lock().held_bytes, 2 * one);
        // Once every request of its generation is a day old, the filter forgets them all.
        assert!(matches!(
            admit(
                &idempotency,
                requests[0],
                body,
                RETENTION_MS + GENERATION_MS
            ),
            Admission::Run
        ));
        assert_eq!(idempotency.lock().charged.bytes(), 0);
    }

    /// Request ids as the gateway makes them, `count` of them from `first` on.
    fn ids(first: u64, count: u64) -> impl Iterator<Item = Hash32> {
        let payer = Address::from_label("payer");
        (first..first + count).map(move |n| request_id(&payer, &format!("order-{n}")))
    }

    #[test]
    fn the_charged_filter_never_forgets_a_day_and_stays_the_same_size_whatever_the_traffic() {
        let mut filter = ChargedFilter::default();
        // Three days of requests, one every 10 seconds of every generation, checked as they go:
        // every one admitted within the day is still contained.
        let step = 10_000;
        let mut admitted = Vec::new();
        for (n, request) in ids(0, 3 * RETENTION_MS / step).enumerate() {
            let at = n as u64 * step;
            filter.forget_expired(at);
            filter.insert(&request, at);
            admitted.push((request, at));
            if n % 97 == 0 {
                let day_ago = at.saturating_sub(RETENTION_MS - 1);
                let start = admitted.partition_point(|(_, when)| *when < day_ago);
                for (earlier, when) in &admitted[start..] {
                    assert!(filter.may_contain(earlier), "admitted at {when}, now {at}");
                }
            }
            assert!(filter.bytes() <= 5 * GENERATION_BITS / 8, "at {at}");
        }
        // A day after the last, nothing is held.
        filter.forget_expired(3 * RETENTION_MS + RETENTION_MS);
        assert_eq!(filter.bytes(), 0);
        assert!(!filter.may_contain(&admitted[admitted.len() - 1].0));
    }

    #[test]
    fn the_charged_filter_sends_few_new_requests_to_the_store_at_the_traffic_it_is_sized_for() {
        let mut filter = ChargedFilter::default();
        for request in ids(0, 600_000) {
            filter.insert(&request, 0);
        }
        let taken_for_charged = ids(600_000, 100_000)
            .filter(|request| filter.may_contain(request))
            .count();
        // The design's figure is about 4 in 1,000 (see GENERATION_BITS).
        assert!(
            taken_for_charged < 1_000,
            "{taken_for_charged} of 100,000 new requests would read the store"
        );
    }
}
