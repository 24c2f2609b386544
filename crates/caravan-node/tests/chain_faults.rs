//! The chain misbehaves: a JSON-RPC endpoint that drops connections, answers errors or
//! nonsense, stalls, loses the answer to a transaction it did send, or reorganises a posted
//! root away. The test puts a proxy that does each of these in front of anvil
//! (`scripts/anvil/install.sh`, which `scripts/test.sh` runs first) and makes it the node's home
//! chain. Through every fault: each deposit is credited once, each root is posted once and none
//! is lost, the node goes on taking work while a chain call hangs, and every failed round says
//! what failed and why.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use caravan_chain::anvil::{ANVIL_CHAIN_ID, ANVIL_DEV_KEY, LocalAnvil};
use caravan_chain::settlement::{FundingLimits, Settlement};
use caravan_core::{AccountRef, Address};
use caravan_models::ArtifactStore;
use caravan_node::Node;
use caravan_node::gateway::receipt::NodeSigner;
use caravan_node::rhythm::{Beat, Rhythm};
use caravan_node::settlement::{Chains, RpcConfig};
use caravan_store::now_ms;
use common::{dev_token, failures, started_store, withdrawal};

/// What the proxy does to the requests it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Passes them to anvil and the answers back.
    None,
    /// Closes the connection without an answer.
    Drop,
    /// Answers a JSON-RPC error.
    Error,
    /// Answers something that is not JSON.
    Garbage,
    /// Holds the request, unanswered, until released, then closes the connection.
    Stall,
    /// Passes everything to anvil, but closes the connection instead of answering a sent
    /// transaction: it is on the chain, and the node never hears so.
    LoseAnswer,
}

/// A JSON-RPC proxy in front of anvil that misbehaves as told.
struct Proxy {
    address: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    /// Set to release the stalled requests.
    released: Arc<(Mutex<bool>, Condvar)>,
    /// Requests held by a stall right now.
    stalled: Arc<AtomicU64>,
}

impl Proxy {
    fn start(anvil: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let fault = Arc::new(Mutex::new(Fault::None));
        let released = Arc::new((Mutex::new(false), Condvar::new()));
        let stalled = Arc::new(AtomicU64::new(0));
        let (f, r, s) = (
            Arc::clone(&fault),
            Arc::clone(&released),
            Arc::clone(&stalled),
        );
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (f, r, s) = (Arc::clone(&f), Arc::clone(&r), Arc::clone(&s));
                std::thread::spawn(move || serve_connection(client, anvil, &f, &r, &s));
            }
        });
        Proxy {
            address,
            fault,
            released,
            stalled,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
        *self.released.0.lock().unwrap() = false;
    }

    /// Lets every stalled request go (its connection closes unanswered).
    fn release(&self) {
        *self.released.0.lock().unwrap() = true;
        self.released.1.notify_all();
    }
}

/// One HTTP message (a request, or anvil's answer): its body, read past its head.
fn read_message(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

fn answer(client: &mut TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    client.write_all(body)
}

/// Sends `body` to anvil and returns its answer's body.
fn forward(anvil: SocketAddr, body: &[u8]) -> Option<Vec<u8>> {
    let mut upstream = TcpStream::connect(anvil).ok()?;
    write!(
        upstream,
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .ok()?;
    upstream.write_all(body).ok()?;
    let mut reader = BufReader::new(upstream);
    read_message(&mut reader)
}

fn serve_connection(
    client: TcpStream,
    anvil: SocketAddr,
    fault: &Mutex<Fault>,
    released: &(Mutex<bool>, Condvar),
    stalled: &AtomicU64,
) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut client = client;
    while let Some(body) = read_message(&mut reader) {
        let now = *fault.lock().unwrap();
        let request = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
        let id = request["id"].clone();
        let sends = request["method"] == "eth_sendRawTransaction";
        let sent = match now {
            Fault::LoseAnswer if sends => {
                let _ = forward(anvil, &body);
                return;
            }
            Fault::None | Fault::LoseAnswer => match forward(anvil, &body) {
                Some(reply) => answer(&mut client, "200 OK", &reply),
                None => return,
            },
            Fault::Drop => return,
            Fault::Error => {
                let error = serde_json::json!({ "jsonrpc": "2.0", "id": id,
                    "error": { "code": -32603, "message": "injected: the node is overloaded" } });
                answer(&mut client, "200 OK", error.to_string().as_bytes())
            }
            Fault::Garbage => answer(&mut client, "200 OK", b"<html>bad gateway</html>"),
            Fault::Stall => {
                stalled.fetch_add(1, Ordering::SeqCst);
                let (lock, wake) = released;
                let mut go = lock.lock().unwrap();
                while !*go {
                    go = wake.wait(go).unwrap();
                }
                stalled.fetch_sub(1, Ordering::SeqCst);
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// One JSON-RPC call straight to anvil (mining, snapshots), past the proxy.
fn anvil_rpc(anvil: &LocalAnvil, method: &str, params: serde_json::Value) -> serde_json::Value {
    let body = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params })
        .to_string();
    let reply = forward(anvil.address(), body.as_bytes()).expect("anvil answers");
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert!(reply.get("error").is_none(), "{method}: {reply}");
    reply["result"].clone()
}

/// A node whose home chain is anvil behind `proxy`, with the development token registered.
fn node(dir: &Path, proxy: &Proxy) -> Node {
    let journal = started_store(dir, Vec::new());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let node = Node::builder(
        journal,
        ArtifactStore::new(dir.join("models")),
        NodeSigner::load_or_create(&dir.join("node.key")).unwrap(),
    )
    .settlement(Chains::new(dir.join("chains"), http))
    .unwrap()
    .funding_limits(FundingLimits::new())
    .open()
    .unwrap();
    node.add_chain(
        "local",
        RpcConfig {
            url: proxy.url(),
            chain_id: ANVIL_CHAIN_ID,
            key_env: "CARAVAN_TEST_CHAIN_FAULTS_KEY".into(),
            confirmations: 1,
        },
    )
    .unwrap();
    node.set_home_chain("local").unwrap();
    node
}

fn prepaid(node: &Node, account: Address) -> u128 {
    node.journal().read(|j| {
        j.economy()
            .ledger()
            .balance(&AccountRef::Payer(account), &dev_token())
            .available()
    })
}

/// Something for the next epoch to owe: a payer who deposited (in the log) withdraws it.
fn owe(node: &Node, amount: u128) {
    let submitted = node
        .journal()
        .submit(withdrawal(
            Address::from_label("withdrawer"),
            dev_token(),
            amount,
        ))
        .unwrap();
    assert!(submitted.refused.is_empty(), "{:?}", submitted.refused);
}

/// The epochs the home chain holds (active and pending), read past the proxy.
fn posted(anvil: &LocalAnvil, node: &Node) -> (u64, u64) {
    let dir = node.settlement().unwrap().chain_dir("local");
    let mut chain = Settlement::open(&dir, Box::new(anvil.connect().unwrap()), 0, 0).unwrap();
    let (active, pending, _) = chain.epochs().unwrap();
    (active, pending)
}

/// Whether a failure is the home chain's settling (asking it which roots it holds, or
/// posting), with a cause after the step.
fn settling(failure: &str) -> bool {
    ["activating the pending root: ", "posting the root: "]
        .iter()
        .any(|step| failure.strip_prefix(step).is_some_and(|why| why.len() > 20))
}

fn posts(beats: &[Beat]) -> Vec<u64> {
    beats
        .iter()
        .filter_map(|beat| match beat {
            Beat::Posted { epoch, .. } => Some(*epoch),
            _ => None,
        })
        .collect()
}

#[test]
fn through_every_chain_fault_deposits_are_credited_once_and_roots_posted_once_never_lost() {
    let binary = caravan_chain::anvil::installed_for_tests();
    let anvil = LocalAnvil::start(&binary).unwrap();
    let proxy = Proxy::start(anvil.address());
    // SAFETY: this test binary runs one test, which sets the variable before any thread reads it.
    unsafe { std::env::set_var("CARAVAN_TEST_CHAIN_FAULTS_KEY", ANVIL_DEV_KEY) };
    let dir = tempfile::tempdir().unwrap();
    let node = Arc::new(node(dir.path(), &proxy));
    let follower = node
        .deposits()
        .expect("a node that settles follows deposits");
    let wallet = || {
        Settlement::open(
            &node.settlement().unwrap().chain_dir("local"),
            Box::new(anvil.connect().unwrap()),
            0,
            0,
        )
        .unwrap()
    };
    let payer = Address::from_label("payer");
    let mut rhythm = Rhythm::new(Duration::from_secs(60), dir.path().join("epochs"), 0);
    let mut clock = now_ms();
    let mut deposited = 0u128;
    let mut epochs_posted = Vec::new();

    for (round, fault) in [Fault::Drop, Fault::Error, Fault::Garbage, Fault::LoseAnswer]
        .into_iter()
        .enumerate()
    {
        let amount = 1_000_000 * (round as u128 + 1);
        wallet().deposit(dev_token(), amount, payer, 0).unwrap();
        deposited += amount;
        owe(&node, 10_000 + round as u128);
        clock += 61_000;

        proxy.set(fault);
        let followed = follower.follow_once();
        let mut credited: u128 = followed.credited.iter().map(|c| c.deposit.amount).sum();
        if fault == Fault::LoseAnswer {
            assert_eq!(
                credited, amount,
                "reads are answered: the deposit is credited"
            );
        } else {
            assert_eq!(credited, 0, "{fault:?}: nothing read, nothing credited");
            assert!(
                !followed.failures.is_empty(),
                "{fault:?}: the failed read is reported"
            );
        }
        let beats = rhythm.beat(&node, clock);
        assert!(
            matches!(beats.first(), Some(Beat::Closed { .. })),
            "{fault:?}: the epoch closes whatever the chain does: {beats:?}"
        );
        let failed = failures(&beats);
        assert!(
            failed.iter().any(|f| settling(f)),
            "{fault:?}: the failed settling is reported with its cause: {failed:?}"
        );
        for (_, why) in &followed.failures {
            assert!(
                why.len() > 20,
                "{fault:?}: a cause, not a bare failure: {why}"
            );
        }

        proxy.set(Fault::None);
        let followed = follower.follow_once();
        assert!(followed.failures.is_empty(), "{:?}", followed.failures);
        credited += followed
            .credited
            .iter()
            .map(|c| c.deposit.amount)
            .sum::<u128>();
        assert_eq!(
            credited, amount,
            "{fault:?}: the deposit is credited once the chain answers"
        );
        assert_eq!(prepaid(&node, payer), deposited, "{fault:?}: credited once");
        let beats = rhythm.beat(&node, clock + 1_000);
        assert!(
            failures(&beats).is_empty(),
            "{fault:?}: {:?}",
            failures(&beats)
        );
        let epoch = node.journal().read(|j| j.economy().next_epoch() - 1);
        if fault == Fault::LoseAnswer {
            assert!(
                posts(&beats).is_empty(),
                "the post whose answer was lost reached the chain; it is not sent again: {beats:?}"
            );
        } else {
            assert_eq!(
                posts(&beats),
                vec![epoch],
                "{fault:?}: posted once the chain answers"
            );
        }
        assert_eq!(posted(&anvil, &node), (epoch, epoch), "{fault:?}");
        epochs_posted.push(epoch);
        assert!(
            follower.follow_once().credited.is_empty(),
            "{fault:?}: nothing is credited twice"
        );
    }

    // A stalled chain: the node goes on taking work while the post and the read hang.
    owe(&node, 77_000);
    clock += 61_000;
    proxy.set(Fault::Stall);
    let stalled_round = {
        let node = Arc::clone(&node);
        std::thread::spawn(move || {
            let beats = rhythm.beat(&node, clock);
            (beats, rhythm)
        })
    };
    while proxy.stalled.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (taken, work) = std::sync::mpsc::channel();
    {
        let node = Arc::clone(&node);
        std::thread::spawn(move || {
            owe(&node, 1);
            let _ = taken.send(());
        });
    }
    assert!(
        work.recv_timeout(Duration::from_secs(10)).is_ok(),
        "the node takes work while a chain call hangs"
    );
    proxy.release();
    let (beats, mut rhythm) = stalled_round.join().unwrap();
    assert!(
        failures(&beats).iter().any(|f| settling(f)),
        "the hung settling fails with its cause: {beats:?}"
    );
    proxy.set(Fault::None);
    let beats = rhythm.beat(&node, clock + 1_000);
    assert!(failures(&beats).is_empty(), "{:?}", failures(&beats));
    let epoch = node.journal().read(|j| j.economy().next_epoch() - 1);
    assert_eq!(posted(&anvil, &node), (epoch, epoch));

    // A reorganisation takes a posted root away: a later round posts it again.
    owe(&node, 5_000);
    clock += 61_000;
    let before_the_post = anvil_rpc(&anvil, "evm_snapshot", serde_json::json!([]));
    let beats = rhythm.beat(&node, clock);
    let epoch = node.journal().read(|j| j.economy().next_epoch() - 1);
    assert_eq!(posts(&beats), vec![epoch]);
    anvil_rpc(&anvil, "evm_revert", serde_json::json!([before_the_post]));
    anvil_rpc(&anvil, "anvil_mine", serde_json::json!([3]));
    assert!(
        posted(&anvil, &node).0 < epoch,
        "the reorganisation took the root"
    );
    let beats = rhythm.beat(&node, clock + 120_000);
    assert_eq!(
        posts(&beats),
        vec![epoch],
        "a root the chain lost is posted again: {beats:?}"
    );
    assert_eq!(posted(&anvil, &node), (epoch, epoch));
    assert_eq!(prepaid(&node, payer), deposited);
}
